import NunchakuCore

/// An 8-bit RGB image: `height` rows of `width` pixels, each three bytes (red, green, blue), rows top to bottom.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `height · width · 3` bytes, row-major, channels interleaved.
    public let pixels: [UInt8]

    /// - Throws: `NunchakuError.invalidArgument` when the size is not positive or `pixels` has the wrong length.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw NunchakuError.invalidArgument(
                context: "RGBImage", reason: "\(width)×\(height) RGB needs \(max(width * height * 3, 0)) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The images of a decoder output `[B, 3, H, W]` (values nominally in [-1, 1], any float dtype), post-processed
    /// as diffusers' `VaeImageProcessor` does: `v = clamp(x / 2 + 0.5, 0, 1)`, byte `round(v · 255)` (half to even).
    /// - Throws: `NunchakuError` when the tensor is not `[B, 3, H, W]` of floats or holds NaN (a failed decode
    ///   would otherwise become a silently grey image).
    public static func images(fromDecoded tensor: Tensor) throws -> [RGBImage] {
        let context = "decoded image"
        guard tensor.rank == 4, tensor.shape[1] == 3, tensor.shape[2] > 0, tensor.shape[3] > 0 else {
            throw NunchakuError.invalidArgument(context: context, reason: "expected [batch, 3, height, width], got shape \(tensor.shape)")
        }
        guard tensor.dtype.isFloatingPoint else {
            throw NunchakuError.dtypeMismatch(context: context, expected: [.f32, .bf16, .f16], actual: tensor.dtype)
        }
        let (batch, height, width) = (tensor.shape[0], tensor.shape[2], tensor.shape[3])
        let values = tensor.floats()
        if let bad = values.firstIndex(where: { $0.isNaN }) {
            throw NunchakuError.invalidArgument(context: context, reason: "element \(bad) is NaN")
        }
        let plane = height * width
        return try (0..<batch).map { sample in
            var pixels = [UInt8](repeating: 0, count: plane * 3)
            for channel in 0..<3 {
                let base = (sample * 3 + channel) * plane
                for pixel in 0..<plane { pixels[pixel * 3 + channel] = byte(values[base + pixel]) }
            }
            return try RGBImage(width: width, height: height, pixels: pixels)
        }
    }

    /// One decoder value in [-1, 1] as a byte.
    static func byte(_ value: Float) -> UInt8 {
        let unit = min(max(value / 2 + 0.5, 0), 1)
        return UInt8((unit * 255).rounded(.toNearestOrEven))
    }
}
