import CPUBackend
import NunchakuCore

/// Seeded, name-addressed random tensors for random-weight models: element `i` of the tensor called `name` is a
/// function of `(seed, name, i)` alone (a counter-based SplitMix64 stream), so a tensor is the same whichever order
/// tensors are made in, and large tensors are filled on all cores.
struct FluxRandomValues: Sendable {
    let seed: UInt64

    /// Elements per parallel job.
    private static let chunk = 1 << 16

    /// Uniformly random bytes (two uniformly random 4-bit codes per byte).
    func bytes(_ name: String, shape: [Int], dtype: DType = .u8) -> Tensor {
        var tensor = Tensor(zeros: shape, dtype: dtype)
        let count = tensor.byteCount
        tensor.withUnsafeMutableBytes { raw in
            forEachWord(name, count: (count + 7) / 8) { word, value in
                var value = value
                for byte in (8 * word)..<min(count, 8 * word + 8) {
                    raw[byte] = UInt8(truncatingIfNeeded: value)
                    value >>= 8
                }
            }
        }
        return tensor
    }

    /// bf16 values uniform in `center ± halfWidth` (24 random bits each, rounded to nearest bf16).
    func uniform(_ name: String, shape: [Int], center: Float, halfWidth: Float) -> Tensor {
        var tensor = Tensor(zeros: shape, dtype: .bf16)
        tensor.withUnsafeMutableBytes { raw in
            let bits = raw.bindMemory(to: UInt16.self)
            forEachWord(name, count: bits.count) { index, value in
                let u = Float(value >> 40) / Float(1 << 24)
                bits[index] = FloatFormats.bf16Bits(center + halfWidth * (2 * u - 1))
            }
        }
        return tensor
    }

    /// float8 e4m3fn codes drawn uniformly from `codes` (micro-scales of NVFP4 layers).
    func e4m3(_ name: String, shape: [Int], codes: ClosedRange<UInt8>) -> Tensor {
        var tensor = Tensor(zeros: shape, dtype: .f8e4m3fn)
        let span = UInt64(codes.count)
        tensor.withUnsafeMutableBytes { raw in
            forEachWord(name, count: raw.count) { index, value in raw[index] = codes.lowerBound + UInt8(value % span) }
        }
        return tensor
    }

    /// Calls `body(i, word i of the stream of name)` for every i in `0..<count`, spread over the cores (each i once;
    /// `body` must only touch memory of its own index).
    private func forEachWord(_ name: String, count: Int, _ body: (Int, UInt64) -> Void) {
        let state = Self.fnv1a64(name) ^ seed
        parallelFor((count + Self.chunk - 1) / Self.chunk) { job in
            for index in (job * Self.chunk)..<min(count, (job + 1) * Self.chunk) {
                body(index, Self.mix(state &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15))
            }
        }
    }

    /// SplitMix64's output function.
    @inline(__always)
    static func mix(_ z: UInt64) -> UInt64 {
        var x = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// FNV-1a over the UTF-8 bytes of `text`.
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }
}
