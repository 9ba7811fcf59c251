import NunchakuCore

/// The 16-bit float type the SVDQuant kernels compute in (`half_t` in Nunchaku): activations, outputs, group
/// scales of INT4 layers, biases, smoothing factors and low-rank weights all hold values of this type.
///
/// The arithmetic helpers emulate the CUDA half intrinsics bit for bit: every result is the exact value rounded
/// once to the nearest representable value, ties to even (`__hadd2`, `__hmul2`, `__hfma2`, `__float2half_rn`).
/// Values travel as `Float`s that are exactly representable in the type.
public enum ActivationDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case bf16
    case f16

    /// The tensor dtype.
    public var dtype: DType {
        switch self {
        case .bf16: .bf16
        case .f16: .f16
        }
    }

    /// The activation type stored as `dtype`, or nil for any other dtype.
    public init?(_ dtype: DType) {
        switch dtype {
        case .bf16: self = .bf16
        case .f16: self = .f16
        default: return nil
        }
    }

    public var description: String { rawValue }

    /// The largest finite value.
    public var maxFinite: Float {
        switch self {
        case .bf16: Float(bitPattern: 0x7F7F_0000)
        case .f16: 65504
        }
    }

    /// `value` rounded to this type (nearest, ties to even; overflow gives ±infinity; NaN stays NaN).
    @inline(__always)
    public func round(_ value: Float) -> Float {
        switch self {
        case .bf16: Float(bitPattern: UInt32(FloatFormats.bf16Bits(value)) << 16)
        case .f16: HalfBits.float(f16: HalfBits.f16Bits(value))
        }
    }

    /// `value` rounded once to this type (no double rounding through `Float`).
    @inline(__always)
    public func round(_ value: Double) -> Float {
        // Round to odd at fp32 first: with ≥ 2 spare bits, rounding that to nearest is the same as rounding
        // `value` to nearest directly (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums", 2008).
        var single = Float(value)
        if single.isFinite, Double(single) != value, single.bitPattern & 1 == 0 {
            single = Double(single) < value ? single.nextUp : single.nextDown
        }
        return round(single)
    }

    /// `a · b + c` rounded once to this type, as `__hfma2` computes it. Inputs are values of this type.
    @inline(__always)
    public func fusedMultiplyAdd(_ a: Float, _ b: Float, _ c: Float) -> Float {
        // a·b is exact in Double (two ≤ 11-bit significands). The sum is rounded to odd in Double (its error
        // recovered exactly by twoSum), which keeps the final rounding to this type correct.
        let product = Double(a) * Double(b), addend = Double(c)
        var sum = product + addend
        if sum.isFinite {
            let virtualAddend = sum - product
            let error = (product - (sum - virtualAddend)) + (addend - virtualAddend)
            if error != 0, sum.bitPattern & 1 == 0 { sum = error > 0 ? sum.nextUp : sum.nextDown }
        }
        return round(sum)
    }

    /// `value` converted to this type for storing weights: like `round`, but saturating at ±`maxFinite` instead
    /// of overflowing to infinity (Nunchaku's `convert_fp16`: `nan_to_num(posinf=65504)` when bf16 checkpoints
    /// run in fp16).
    public func roundSaturating(_ value: Float) -> Float {
        let rounded = round(value)
        if rounded.isInfinite { return rounded < 0 ? -maxFinite : maxFinite }
        return rounded
    }

    /// The 16 storage bits of `value` (rounded to nearest even first).
    @inline(__always)
    public func bits(_ value: Float) -> UInt16 {
        switch self {
        case .bf16: FloatFormats.bf16Bits(value)
        case .f16: HalfBits.f16Bits(value)
        }
    }

    /// The value of 16 storage bits.
    @inline(__always)
    public func value(_ bits: UInt16) -> Float {
        switch self {
        case .bf16: Float(bitPattern: UInt32(bits) << 16)
        case .f16: HalfBits.float(f16: bits)
        }
    }
}

/// Fast IEEE binary16 conversions for hot loops (the generic ones in `FloatFormats` are written for clarity).
enum HalfBits {
    /// Every f16 value, indexed by its bits.
    private static let f16Values: [Float] = (0...UInt16.max).map { FloatFormats.float(f16: $0) }

    @inline(__always)
    static func float(f16 bits: UInt16) -> Float {
        f16Values.withUnsafeBufferPointer { $0[Int(bits)] }
    }

    /// `value` rounded to f16 bits, nearest even; overflow gives ±infinity, NaN a quiet NaN.
    @inline(__always)
    static func f16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude > 0x7F80_0000 { return sign | 0x7E00 }  // NaN
        if magnitude >= 0x477F_F000 { return sign | 0x7C00 }  // ≥ 65520 rounds past 65504
        if magnitude < 0x3880_0000 {  // below 2^-14: subnormal, spacing 2^-24
            let scaled = Float(bitPattern: magnitude) * 0x1p24
            return sign | UInt16(scaled.rounded(.toNearestOrEven))
        }
        let rounded = magnitude &+ 0xFFF &+ ((magnitude >> 13) & 1)
        return sign | UInt16(truncatingIfNeeded: (rounded >> 13) &- (112 << 10))
    }
}
