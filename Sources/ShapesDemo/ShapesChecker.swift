import NunchakuCore
import Pipelines

/// How well one group of a caption is found in an image.
public struct ShapesGroupCheck: Sendable, Equatable, Codable {
    public let group: ShapesGroup
    /// Blobs of the group's colour.
    public let found: Int
    /// Of those, how many have the asked shape / sit in the group's region.
    public let rightShape: Int
    public let inRegion: Int
    /// 0…1: present 0.3, count 0.25, shape 0.25, position 0.2.
    public let score: Double
}

/// The checker's verdict on one image: a 0–100 prompt-adherence score and what it is made of.
public struct ShapesCheck: Sendable, Equatable, Codable {
    public let score: Double
    public let detectedBackground: ShapesColor?
    public let groups: [ShapesGroupCheck]
    /// Blobs of colours the caption does not name.
    public let extraObjects: Int
}

/// Scores how well an image shows a caption of the flux-shapes grammar, by pixel analysis (`ColorComponents`):
/// 10 points for the background colour, 10 for no objects of colours the caption does not name, and 80 shared by
/// the groups — for each, its colour present (30 %), the right number of blobs (25 %, partial credit for near
/// misses), the fraction with the right shape (25 %, by fill ratio) and the fraction in its region (20 %: the half
/// the relation puts it in, anywhere for a lone group). Object sizes are not scored.
public enum ShapesChecker {
    /// - Throws: `NunchakuError.invalidArgument` when the scene's colours are not all different (groups from each
    ///   other and from the background): the checker tells objects apart by colour.
    public static func check(_ image: RGBImage, scene: ShapesScene) throws -> ShapesCheck {
        let colors = scene.groups.map(\.color) + [scene.background]
        guard Set(colors).count == colors.count else {
            throw NunchakuError.invalidArgument(
                context: "scene", reason: "the checker needs the groups' colours to differ from each other and from the background (\(colors.map(\.rawValue)))")
        }
        let analysis = ColorComponents(image: image)
        let background = analysis.borderColor
        let components = analysis.components(except: background)
        var groupChecks: [ShapesGroupCheck] = []
        for (group, region) in zip(scene.groups, scene.regions) {
            let mine = components.filter { $0.color == group.color }
            let rightShape = mine.filter { $0.shape == group.shape }.count
            let inRegion = mine.filter { region.contains(x: $0.centerX, y: $0.centerY) }.count
            let present = mine.isEmpty ? 0.0 : 1.0
            let count = max(0, 1 - Double(abs(mine.count - group.count)) / Double(group.count))
            let shape = mine.isEmpty ? 0 : Double(rightShape) / Double(mine.count)
            let position = mine.isEmpty ? 0 : Double(inRegion) / Double(mine.count)
            groupChecks.append(ShapesGroupCheck(
                group: group, found: mine.count, rightShape: rightShape, inRegion: inRegion,
                score: 0.3 * present + 0.25 * count + 0.25 * shape + 0.2 * position))
        }
        let named = Set(scene.groups.map(\.color))
        let extras = components.filter { !named.contains($0.color) }.count
        let groupsScore = groupChecks.map(\.score).reduce(0, +) / Double(groupChecks.count)
        let score = 10 * (background == scene.background ? 1 : 0) + 10 * (extras == 0 ? 1 : 0) + 80 * groupsScore
        return ShapesCheck(score: score, detectedBackground: background, groups: groupChecks, extraObjects: extras)
    }
}
