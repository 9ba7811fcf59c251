import Foundation
import Pipelines
import ShapesDemo
import Testing

/// The checker on scenes drawn by the training generator (scripts/demo/scenes.py): right captions score ~100,
/// wrong ones low.
@Suite(.enabled(if: SceneGeneratorFixture.isUsable || SceneGeneratorFixture.isRequired))
struct ShapesCheckerTests {
    @Test func generatorAvailableUnderCI() {
        #expect(SceneGeneratorFixture.isUsable, "NUNCHAKU_CI is set but \(SceneGeneratorFixture.interpreter) lacks numpy, Pillow or safetensors")
    }

    @Test func groundTruthScoresNearlyFull() throws {
        let scenes = try SceneGeneratorFixture.scenes(count: 40, seed: 11)
        #expect(scenes.count == 40)
        var total = 0.0
        for (caption, image) in scenes {
            let check = try ShapesChecker.check(image, scene: try ShapesScene(prompt: caption))
            #expect(check.score >= 90, "\(caption): \(check)")
            total += check.score
        }
        #expect(total / Double(scenes.count) >= 98)
    }

    @Test func wrongColoursScoreLow() throws {
        for (caption, image) in try SceneGeneratorFixture.scenes(count: 20, seed: 12) {
            var scene = try ShapesScene(prompt: caption)
            let used = Set(scene.groups.map(\.color) + [scene.background])
            let unused = ShapesColor.allCases.filter { !used.contains($0) }
            for index in scene.groups.indices { scene.groups[index].color = unused[index] }
            let check = try ShapesChecker.check(image, scene: scene)
            #expect(check.score <= 20, "\(caption) checked as other colours: \(check.score)")
        }
    }

    @Test func wrongShapesCountsAndPlacesLoseTheirShare() throws {
        for (caption, image) in try SceneGeneratorFixture.scenes(count: 20, seed: 13) {
            let truth = try ShapesChecker.check(image, scene: try ShapesScene(prompt: caption)).score
            var shapes = try ShapesScene(prompt: caption)
            for index in shapes.groups.indices {
                shapes.groups[index].shape = ShapesShape.allCases.first { $0 != shapes.groups[index].shape }!
            }
            #expect(try ShapesChecker.check(image, scene: shapes).score <= truth - 19, "\(caption): shapes")
            var counts = try ShapesScene(prompt: caption)
            // 1 → 3 loses at least ⅔ of the count share (25 % of the group's 80 / groups points), 2 or 3 → 1 all of it.
            for index in counts.groups.indices { counts.groups[index].count = counts.groups[index].count == 1 ? 3 : 1 }
            #expect(try ShapesChecker.check(image, scene: counts).score <= truth - 6, "\(caption): counts")
            var places = try ShapesScene(prompt: caption)
            guard let relation = places.relation else { continue }
            places.relation = switch relation {
            case .above: .below
            case .below: .above
            case .leftOf: .rightOf
            case .rightOf: .leftOf
            }
            #expect(try ShapesChecker.check(image, scene: places).score <= truth - 15, "\(caption): relation")
        }
    }

    @Test func captionsOfOtherScenesScoreLow() throws {
        let scenes = try SceneGeneratorFixture.scenes(count: 30, seed: 14)
        var total = 0.0, checked = 0
        for (index, (_, image)) in scenes.enumerated() {
            let other = try ShapesScene(prompt: scenes[(index + 1) % scenes.count].caption)
            total += try ShapesChecker.check(image, scene: other).score
            checked += 1
        }
        #expect(total / Double(checked) <= 35)
    }
}
