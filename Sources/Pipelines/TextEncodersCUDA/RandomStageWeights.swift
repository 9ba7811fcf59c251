import CPUBackend
import NunchakuCore

/// Random bf16 weights for a pipeline stage (text encoder, VAE decoder) of any size, with no file: every tensor is a
/// function of `(seed, name)` alone, made when asked for, so a GPU model and the CPU reference built from the same
/// provider hold the same weights, and a full-size model never sits in host memory as a whole.
///
/// Values are uniform in `center ± spread`, chosen from the name and shape so activations stay of order one through
/// deep stacks: vectors of norms (rank 1, `norm` in the name: weights and biases) 1 ± ¼; other vectors (biases)
/// ± 0.1; embeddings and T5's relative position bias ± 1; linear weights `[N, K]` ± 1/√K; convolution weights `[O, I, kh, kw]` ± 1/√(I·kh·kw).
public struct RandomStageWeights: TensorProvider, Sendable {
    /// Every tensor's name and shape.
    public let shapes: [String: [Int]]
    public let seed: UInt64

    public init(shapes: [String: [Int]], seed: UInt64) {
        self.shapes = shapes
        self.seed = seed
    }

    public var tensorNames: [String] { shapes.keys.sorted() }

    public func tensor(named name: String) throws -> Tensor {
        guard let shape = shapes[name] else {
            throw NunchakuError.invalidArgument(context: name, reason: "no tensor with this name in the random weights")
        }
        let (center, spread) = Self.range(name: name, shape: shape)
        let bits = Self.fill(count: shape.reduce(1, *), seed: SplitMix64.mix(seed ^ Self.fnv1a(name))) { random in
            FloatFormats.bf16Bits(center + spread * (Float(random >> 40) / Float(1 << 24) * 2 - 1))
        }
        return try bits.withUnsafeBytes { try Tensor(shape: shape, dtype: .bf16, bytes: $0) }
    }

    /// `count` 16-bit values, each `value` of a fresh 64-bit random number, made in parallel chunks seeded from `seed`
    /// and the chunk index (so the result depends on `seed` alone).
    static func fill(count: Int, seed: UInt64, _ value: @Sendable (UInt64) -> UInt16) -> [UInt16] {
        var bits = [UInt16](repeating: 0, count: count)
        let chunk = 1 << 16
        bits.withUnsafeMutableBufferPointer { bits in
            parallelFor((count + chunk - 1) / chunk) { index in
                var generator = SplitMix64(seed: SplitMix64.mix(seed &+ UInt64(index)))
                for position in (index * chunk)..<min(count, (index + 1) * chunk) { bits[position] = value(generator.next()) }
            }
        }
        return bits
    }

    /// The center and half-width of the values of tensor `name` with `shape`.
    static func range(name: String, shape: [Int]) -> (center: Float, spread: Float) {
        switch shape.count {
        case 1: return name.contains("norm") ? (1, 0.25) : (0, 0.1)
        case 2 where name.contains("embed") || name.hasPrefix("shared") || name.contains("relative_attention_bias"):
            return (0, 1)
        default: return (0, Float(1 / Double(max(1, shape.dropFirst().reduce(1, *))).squareRoot()))
        }
    }

    /// FNV-1a over the name's UTF-8 bytes (stable across runs, unlike `hashValue`).
    static func fnv1a(_ text: String) -> UInt64 {
        text.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }
}
