import NunchakuCore

/// One group of identical objects: "two large red circles".
public struct ShapesGroup: Sendable, Equatable, Codable {
    public var count: Int
    public var size: ShapesSize
    public var color: ShapesColor
    public var shape: ShapesShape

    public init(count: Int, size: ShapesSize = .medium, color: ShapesColor, shape: ShapesShape) {
        self.count = count
        self.size = size
        self.color = color
        self.shape = shape
    }
}

/// What a caption of the flux-shapes grammar asks for: one or two groups, their relation, the background.
public struct ShapesScene: Sendable, Equatable, Codable {
    public var groups: [ShapesGroup]
    public var relation: ShapesRelation?
    public var background: ShapesColor

    public init(groups: [ShapesGroup], relation: ShapesRelation?, background: ShapesColor) {
        self.groups = groups
        self.relation = relation
        self.background = background
    }

    /// The region each group must sit in (same order as `groups`).
    public var regions: [ShapesRegion] { ShapesRegion.regions(for: relation) }

    /// Parses a caption of the grammar (docs/demo.md; case and extra spaces are ignored):
    ///
    ///     group [relation group] on a|an COLOR background
    ///     group := a|an|one|two|three [small|large] COLOR SHAPE[s]
    ///
    /// - Throws: `NunchakuError.invalidArgument` naming the word that does not fit.
    public init(prompt: String) throws {
        var words = prompt.lowercased().split(whereSeparator: { $0 == " " || $0 == "," || $0 == "." }).map(String.init)
        func fail(_ reason: String) -> NunchakuError {
            .invalidArgument(context: "prompt \"\(prompt)\"", reason: reason + " (the flux-shapes grammar: docs/demo.md)")
        }
        guard words.count >= 4, words.suffix(1) == ["background"], words[words.count - 4] == "on",
              ["a", "an"].contains(words[words.count - 3]) else {
            throw fail("it must end with \"on a COLOR background\"")
        }
        guard let background = ShapesColor(rawValue: words[words.count - 2]) else {
            throw fail("\"\(words[words.count - 2])\" is not a background colour (\(ShapesColor.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        words.removeLast(4)
        var position = 0
        let first = try Self.group(words, &position, fail)
        var groups = [first], relation: ShapesRelation?
        if position < words.count {
            let rest = words[position...].joined(separator: " ")
            guard let found = ShapesRelation.allCases.first(where: { rest.hasPrefix($0.rawValue + " ") }) else {
                throw fail("expected above, below, to the left of or to the right of at \"\(rest)\"")
            }
            relation = found
            position += found.rawValue.split(separator: " ").count
            groups.append(try Self.group(words, &position, fail))
            guard position == words.count else {
                throw fail("unexpected words after the second group: \"\(words[position...].joined(separator: " "))\"")
            }
        }
        self.init(groups: groups, relation: relation, background: background)
    }

    private static func group(_ words: [String], _ position: inout Int, _ fail: (String) -> NunchakuError) throws -> ShapesGroup {
        let counts = ["a": 1, "an": 1, "one": 1, "two": 2, "three": 3]
        guard position < words.count, let count = counts[words[position]] else {
            throw fail("expected a count (a, an, one, two, three) at \"\(position < words.count ? words[position] : "")\"")
        }
        position += 1
        var size = ShapesSize.medium
        if position < words.count, let given = ShapesSize(rawValue: words[position]), given != .medium {
            size = given
            position += 1
        }
        guard position + 1 < words.count, let color = ShapesColor(rawValue: words[position]) else {
            throw fail("expected a colour at \"\(position < words.count ? words[position] : "")\"")
        }
        var noun = words[position + 1]
        if count > 1, noun.hasSuffix("s") { noun.removeLast() }
        guard let shape = ShapesShape(rawValue: noun) else {
            throw fail("\"\(words[position + 1])\" is not a shape (circle, square, triangle; plural for two or three)")
        }
        position += 2
        return ShapesGroup(count: count, size: size, color: color, shape: shape)
    }
}
