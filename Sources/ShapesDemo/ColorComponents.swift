import Pipelines

/// One connected blob of pixels of a palette colour.
public struct ColorComponent: Sendable, Equatable, Codable {
    public let color: ShapesColor
    public let area: Int
    /// Bounding box in pixels, inclusive.
    public let minX: Int, minY: Int, maxX: Int, maxY: Int
    /// Centroid in canvas units (0…1).
    public let centerX: Double, centerY: Double

    /// Area over bounding-box area: about 1 for a square, π/4 for a circle, 1/2 for a triangle.
    public var fill: Double { Double(area) / Double((maxX - minX + 1) * (maxY - minY + 1)) }

    /// The shape the fill ratio points to.
    public var shape: ShapesShape { fill >= 0.89 ? .square : fill >= 0.64 ? .circle : .triangle }
}

/// Pixel analysis of an image against the grammar's palette: every pixel goes to the nearest palette colour (or to
/// none when it is far from all of them, such as blended edges), then 4-connected blobs are collected per colour.
public struct ColorComponents: Sendable {
    /// The palette colour of each pixel (index into `ShapesColor.allCases`), or -1.
    public let labels: [Int8]
    public let width: Int
    public let height: Int

    /// A pixel farther than this (Euclidean, 8-bit RGB) from every palette colour gets no label.
    public static let maximumDistance = 60.0
    /// Blobs smaller than this many pixels, thinner than `minimumSide`, or filling less than `minimumFill` of their
    /// bounding box (the blended outline of a shape, e.g. purple where red meets blue) are edges or noise, not objects.
    public static let minimumArea = 24
    public static let minimumSide = 4
    public static let minimumFill = 0.3

    public init(image: RGBImage) {
        width = image.width
        height = image.height
        let palette = ShapesColor.allCases.map(\.rgb)
        let limit = Self.maximumDistance * Self.maximumDistance
        var labels = [Int8](repeating: -1, count: width * height)
        for index in 0..<(width * height) {
            let r = Double(image.pixels[3 * index]), g = Double(image.pixels[3 * index + 1]), b = Double(image.pixels[3 * index + 2])
            var best = -1, bestDistance = limit
            for (label, color) in palette.enumerated() {
                let dr = r - Double(color.r), dg = g - Double(color.g), db = b - Double(color.b)
                let distance = dr * dr + dg * dg + db * db
                if distance <= bestDistance { (best, bestDistance) = (label, distance) }
            }
            labels[index] = Int8(best)
        }
        self.labels = labels
    }

    /// The most frequent colour on a 2-pixel frame around the image, or nil if no frame pixel has a colour.
    public var borderColor: ShapesColor? {
        var counts = [Int](repeating: 0, count: ShapesColor.allCases.count)
        for y in 0..<height {
            for x in 0..<width where x < 2 || y < 2 || x >= width - 2 || y >= height - 2 {
                let label = Int(labels[y * width + x])
                if label >= 0 { counts[label] += 1 }
            }
        }
        guard let best = counts.indices.max(by: { counts[$0] < counts[$1] }), counts[best] > 0 else { return nil }
        return ShapesColor.allCases[best]
    }

    /// Every blob of at least `minimumArea` pixels and `minimumSide` pixels across, of any colour but `except`.
    public func components(except excluded: ShapesColor?) -> [ColorComponent] {
        var visited = [Bool](repeating: false, count: labels.count)
        var found: [ColorComponent] = []
        var stack: [Int] = []
        let colors = ShapesColor.allCases
        for start in labels.indices where !visited[start] && labels[start] >= 0 {
            let label = labels[start]
            let color = colors[Int(label)]
            var area = 0, sumX = 0, sumY = 0
            var (minX, minY, maxX, maxY) = (width, height, -1, -1)
            stack.append(start)
            visited[start] = true
            while let index = stack.popLast() {
                let x = index % width, y = index / width
                area += 1
                sumX += x
                sumY += y
                (minX, minY, maxX, maxY) = (min(minX, x), min(minY, y), max(maxX, x), max(maxY, y))
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
                where nx >= 0 && ny >= 0 && nx < width && ny < height {
                    let next = ny * width + nx
                    if !visited[next] && labels[next] == label {
                        visited[next] = true
                        stack.append(next)
                    }
                }
            }
            guard color != excluded, area >= Self.minimumArea,
                  min(maxX - minX, maxY - minY) + 1 >= Self.minimumSide else { continue }
            let component = ColorComponent(
                color: color, area: area, minX: minX, minY: minY, maxX: maxX, maxY: maxY,
                centerX: (Double(sumX) / Double(area) + 0.5) / Double(width),
                centerY: (Double(sumY) / Double(area) + 0.5) / Double(height))
            if component.fill >= Self.minimumFill { found.append(component) }
        }
        return found
    }
}
