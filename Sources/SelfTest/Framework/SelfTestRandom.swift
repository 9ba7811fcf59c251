import CPUBackend
import NunchakuCore

/// A small, fast, seedable random source (SplitMix64) for self-test inputs. Not cryptographic.
public struct SelfTestRandom: RandomNumberGenerator, Sendable {
    private var bits: SplitMix64

    public init(seed: UInt64) { bits = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { bits.next() }

    /// A uniform `Float` in `range` (24 random bits).
    public mutating func uniform(_ range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) * 0x1p-24
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }

    /// SplitMix64's finaliser: a bijective scramble of 64 bits (used to derive seeds from seeds).
    public static func mix(_ value: UInt64) -> UInt64 { SplitMix64.mix(value) }

    /// A seed for `name` derived from `base` (FNV-1a of the name, mixed with the base seed), so one case can be
    /// rerun alone with the same inputs by passing the same base seed.
    public static func seed(for name: String, base: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return mix(hash ^ mix(base))
    }
}

/// A host tensor of random values together with those values as `Float` (exactly what the GPU will see, after
/// rounding to the tensor's dtype).
public struct RandomTensor: Sendable {
    public let tensor: Tensor
    public let values: [Float]

    /// `shape` filled with values drawn uniformly from `range`, rounded to `dtype` (f32, bf16 or f16), never zero
    /// (a value that rounds to zero is drawn again). Generated in parallel chunks, each seeded from `seed` and
    /// its index, so the result depends on the seed alone.
    public init(shape: [Int], dtype: DType, range: ClosedRange<Float>, seed: UInt64) {
        precondition([.f32, .bf16, .f16].contains(dtype), "RandomTensor supports f32, bf16 and f16, not \(dtype)")
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        var tensor = Tensor(zeros: shape, dtype: dtype)
        let chunk = 1 << 16
        let chunks = (count + chunk - 1) / chunk
        values.withUnsafeMutableBufferPointer { values in
            tensor.withUnsafeMutableBytes { bytes in
                parallelFor(chunks) { index in
                    var random = SelfTestRandom(seed: SelfTestRandom.mix(seed ^ SelfTestRandom.mix(UInt64(index))))
                    for element in (index * chunk)..<min(count, (index + 1) * chunk) {
                        var value: Float = 0
                        var bits: UInt16 = 0
                        repeat {
                            let drawn = random.uniform(range)
                            switch dtype {
                            case .bf16:
                                bits = FloatFormats.bf16Bits(drawn)
                                value = FloatFormats.float(bf16: bits)
                            case .f16:
                                bits = FloatFormats.f16Bits(drawn)
                                value = FloatFormats.float(f16: bits)
                            default:
                                value = drawn
                            }
                        } while value == 0
                        values[element] = value
                        if dtype == .f32 {
                            bytes.storeBytes(of: value, toByteOffset: element * 4, as: Float.self)
                        } else {
                            bytes.storeBytes(of: bits, toByteOffset: element * 2, as: UInt16.self)
                        }
                    }
                }
            }
        }
        self.tensor = tensor
        self.values = values
    }

    public var shape: [Int] { tensor.shape }
    public var dtype: DType { tensor.dtype }
}

/// Which rows of a large output a case compares with the CPU (the GPU computes all of them, and every element is
/// still checked for poison and NaN).
public enum SelfTestRows {
    /// All rows when there are at most `maximum`; otherwise `maximum` distinct rows in increasing order, always
    /// including the first and the last, the rest drawn at random.
    public static func sample(from count: Int, maximum: Int, random: inout SelfTestRandom) -> [Int] {
        guard count > maximum else { return Array(0..<count) }
        var chosen: Set<Int> = [0, count - 1]
        while chosen.count < max(2, maximum) {
            chosen.insert(Int(random.next() % UInt64(count)))
        }
        return chosen.sorted()
    }
}
