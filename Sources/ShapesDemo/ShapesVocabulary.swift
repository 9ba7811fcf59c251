/// The words of the flux-shapes caption grammar and what they mean in pixels. These mirror `scripts/demo/scenes.py`,
/// which draws the training scenes (docs/demo.md); a change there needs the same change here.
public enum ShapesColor: String, Sendable, CaseIterable, Codable {
    case red, green, blue, yellow, purple, orange, white, black, gray

    /// The colour the scene generator paints, 8-bit RGB.
    public var rgb: (r: Int, g: Int, b: Int) {
        switch self {
        case .red: (220, 40, 40)
        case .green: (40, 170, 60)
        case .blue: (40, 80, 220)
        case .yellow: (240, 210, 40)
        case .purple: (140, 60, 180)
        case .orange: (245, 140, 30)
        case .white: (245, 245, 245)
        case .black: (20, 20, 20)
        case .gray: (128, 128, 128)
        }
    }
}

/// The three shapes, told apart by how much of their bounding box they fill.
public enum ShapesShape: String, Sendable, CaseIterable, Codable {
    case circle, square, triangle
}

/// Object size as a fraction of its layout cell's shorter side.
public enum ShapesSize: String, Sendable, CaseIterable, Codable {
    case small, medium, large
}

/// Where the first group sits relative to the second.
public enum ShapesRelation: String, Sendable, CaseIterable, Codable {
    case above, below
    case leftOf = "to the left of"
    case rightOf = "to the right of"
}

/// A rectangle in units of the canvas (0…1 both ways), y growing downwards.
public struct ShapesRegion: Sendable, Equatable, Codable {
    public let x0: Double, y0: Double, x1: Double, y1: Double

    public init(x0: Double, y0: Double, x1: Double, y1: Double) {
        (self.x0, self.y0, self.x1, self.y1) = (x0, y0, x1, y1)
    }

    public static let canvas = ShapesRegion(x0: 0, y0: 0, x1: 1, y1: 1)

    /// Whether the point (in canvas units) lies inside.
    public func contains(x: Double, y: Double) -> Bool { x >= x0 && x < x1 && y >= y0 && y < y1 }

    /// The regions of the first and the second group: the canvas for a lone group, halves for a relation.
    public static func regions(for relation: ShapesRelation?) -> [ShapesRegion] {
        let top = ShapesRegion(x0: 0, y0: 0, x1: 1, y1: 0.5), bottom = ShapesRegion(x0: 0, y0: 0.5, x1: 1, y1: 1)
        let left = ShapesRegion(x0: 0, y0: 0, x1: 0.5, y1: 1), right = ShapesRegion(x0: 0.5, y0: 0, x1: 1, y1: 1)
        switch relation {
        case nil: return [.canvas]
        case .above?: return [top, bottom]
        case .below?: return [bottom, top]
        case .leftOf?: return [left, right]
        case .rightOf?: return [right, left]
        }
    }
}
