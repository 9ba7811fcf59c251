import CPUBackend
import NunchakuCore

/// One sample's activations inside the VAE decoder: `height × width` pixels of `channels` values each, stored
/// channels-last (`[H, W, C]`, row-major), so a pixel's channels are contiguous (3×3 patches are nine copies, and the
/// attention's tokens are the rows as they lie).
struct FeatureMap {
    let height: Int
    let width: Int
    let channels: Int
    var values: [Float]

    init(height: Int, width: Int, channels: Int, values: [Float]) {
        precondition(values.count == height * width * channels, "feature map size does not match \(height)×\(width)×\(channels)")
        self.height = height
        self.width = width
        self.channels = channels
        self.values = values
    }

    var pixelCount: Int { height * width }

    /// Element-wise `self + other` (the residual connections); both must have one geometry.
    func adding(_ other: FeatureMap, precision: VAEPrecision) -> FeatureMap {
        precondition(height == other.height && width == other.width && channels == other.channels, "residual geometry differs")
        var sum = values
        sum.withUnsafeMutableBufferPointer { sum in
            other.values.withUnsafeBufferPointer { other in
                forChunks(of: sum.count) { range in
                    for index in range { sum[index] = precision.round(sum[index] + other[index]) }
                }
            }
        }
        return FeatureMap(height: height, width: width, channels: channels, values: sum)
    }

    /// Nearest-neighbour ×2 upsampling (`F.interpolate(scale_factor=2, mode="nearest")`): each pixel becomes a 2×2 block.
    func upsampledNearest2x() -> FeatureMap {
        let outWidth = 2 * width
        var result = [Float](repeating: 0, count: 4 * values.count)
        values.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { result in
                parallelFor(2 * height) { outRow in
                    let sourceRow = source.baseAddress! + (outRow / 2) * width * channels
                    let destinationRow = result.baseAddress! + outRow * outWidth * channels
                    for x in 0..<outWidth {
                        (destinationRow + x * channels).update(from: sourceRow + (x / 2) * channels, count: channels)
                    }
                }
            }
        }
        return FeatureMap(height: 2 * height, width: outWidth, channels: channels, values: result)
    }
}

/// The dtype the decoder computes in. Every op accumulates in `Float` (or `Double`) and rounds its output once to
/// this precision, as a PyTorch op with bf16 tensors does; parameters are rounded to it when loaded.
public enum VAEPrecision: Sendable, Equatable {
    case float32
    case bfloat16

    /// The precision for `dtype` (`.f32` or `.bf16`).
    /// - Throws: `NunchakuError.unsupported` for any other dtype.
    public init(_ dtype: DType) throws {
        switch dtype {
        case .f32: self = .float32
        case .bf16: self = .bfloat16
        default: throw NunchakuError.unsupported(context: "AutoencoderKLDecoder", reason: "compute dtype \(dtype); use f32 or bf16")
        }
    }

    /// The tensor dtype this precision produces.
    public var dtype: DType { self == .float32 ? .f32 : .bf16 }

    /// `value` rounded to this precision (nearest even).
    @inline(__always)
    func round(_ value: Float) -> Float {
        self == .float32 ? value : FloatFormats.float(bf16: FloatFormats.bf16Bits(value))
    }

    /// Every element of `values` rounded to this precision, in place, on all cores.
    func round(_ values: inout [Float]) {
        guard self != .float32 else { return }
        values.withUnsafeMutableBufferPointer { values in
            forChunks(of: values.count) { range in
                for index in range { values[index] = round(values[index]) }
            }
        }
    }
}

/// Runs `body` over chunks of `0..<count` (at least 16 Ki elements each) on all cores; chunks are disjoint.
func forChunks(of count: Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let chunks = max(1, min(count / 16_384, 4 * Environment.processorCount))
    let size = (count + chunks - 1) / chunks
    parallelFor(chunks) { chunk in
        let range = (chunk * size)..<min(count, (chunk + 1) * size)
        if !range.isEmpty { body(range) }
    }
}
