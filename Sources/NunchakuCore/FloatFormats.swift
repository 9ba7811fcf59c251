/// Bit-exact conversions between `Float` and the narrow floating-point formats.
///
/// Every conversion to a narrow format rounds to nearest, ties to even, and handles signed zeros,
/// subnormals, infinities and NaN. The rules match PyTorch's `Tensor.to(dtype)` on the CPU unless
/// a `saturating` variant is asked for (which matches CUDA's `cvt.rn.satfinite`).
/// These functions do not use Swift's `Float16`, which some platforms lack.
public enum FloatFormats {

    // MARK: IEEE binary16

    /// Rounds `value` to IEEE half precision. Overflow gives ±infinity; NaN gives a quiet NaN of the same sign.
    public static func f16Bits(_ value: Float) -> UInt16 {
        UInt16(truncatingIfNeeded: encode(value, SmallFloat.f16, overflow: .infinity))
    }

    /// The exact `Float` value of an IEEE half.
    public static func float(f16 bits: UInt16) -> Float {
        decode(UInt32(bits), SmallFloat.f16)
    }

    // MARK: bfloat16

    /// Rounds `value` to bfloat16 (the upper 16 bits of a float32, rounded to nearest even).
    /// NaN becomes the quiet NaN 0x7FC0 (0xFFC0 when negative).
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000) | 0x7FC0 }
        let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// The exact `Float` value of a bfloat16.
    public static func float(bf16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    // MARK: float8

    /// Rounds `value` to float8 e4m3fn. Without saturation (PyTorch's rule) a value that rounds past 448,
    /// and ±infinity, become NaN; with saturation (CUDA's `satfinite`) they clamp to ±448. NaN stays NaN.
    public static func e4m3fnBits(_ value: Float, saturating: Bool = false) -> UInt8 {
        UInt8(truncatingIfNeeded: encode(value, SmallFloat.e4m3fn, overflow: saturating ? .saturate : .nan))
    }

    /// The exact `Float` value of a float8 e4m3fn code (0x7F and 0xFF are NaN; there are no infinities).
    public static func float(e4m3fn bits: UInt8) -> Float {
        decode(UInt32(bits), SmallFloat.e4m3fn)
    }

    /// Rounds `value` to float8 e5m2. Overflow gives ±infinity (or ±57344 when saturating).
    public static func e5m2Bits(_ value: Float, saturating: Bool = false) -> UInt8 {
        UInt8(truncatingIfNeeded: encode(value, SmallFloat.e5m2, overflow: saturating ? .saturate : .infinity))
    }

    /// The exact `Float` value of a float8 e5m2 code.
    public static func float(e5m2 bits: UInt8) -> Float {
        decode(UInt32(bits), SmallFloat.e5m2)
    }

    /// The value of a float8 e8m0 code: 2^(bits − 127); 0xFF is NaN.
    public static func float(e8m0 bits: UInt8) -> Float {
        bits == 0xFF ? .nan : Float(sign: .plus, exponent: Int(bits) - 127, significand: 1)
    }

    // MARK: float4 e2m1

    /// Rounds `value` to a 4-bit E2M1 code (values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, sign in bit 3),
    /// ties to even, saturating at ±6. E2M1 has no NaN: NaN gives code 0.
    public static func e2m1Code(_ value: Float) -> UInt8 {
        if value.isNaN { return 0 }
        return UInt8(truncatingIfNeeded: encode(value, SmallFloat.e2m1, overflow: .saturate))
    }

    /// The value of a 4-bit E2M1 code (only the low 4 bits are read).
    public static func float(e2m1 code: UInt8) -> Float {
        decode(UInt32(code & 0xF), SmallFloat.e2m1)
    }

    // MARK: Generic small-float rounding

    /// The layout of a small binary floating-point format.
    struct SmallFloat {
        let exponentBits: Int
        let mantissaBits: Int
        /// Whether the all-ones exponent encodes infinity/NaN (IEEE) or ordinary values.
        let ieeeSpecials: Bool
        /// The largest finite magnitude.
        let maxFinite: Float
        /// The code of a quiet NaN without sign, or nil when the format has no NaN.
        let nanCode: UInt32?

        var bias: Int { (1 << (exponentBits - 1)) - 1 }
        var minNormalExponent: Int { 1 - bias }
        var signBit: UInt32 { 1 << UInt32(exponentBits + mantissaBits) }
        var infinityCode: UInt32 { UInt32((1 << exponentBits) - 1) << UInt32(mantissaBits) }

        static let f16 = SmallFloat(exponentBits: 5, mantissaBits: 10, ieeeSpecials: true, maxFinite: 65504, nanCode: 0x7E00)
        static let e4m3fn = SmallFloat(exponentBits: 4, mantissaBits: 3, ieeeSpecials: false, maxFinite: 448, nanCode: 0x7F)
        static let e5m2 = SmallFloat(exponentBits: 5, mantissaBits: 2, ieeeSpecials: true, maxFinite: 57344, nanCode: 0x7F)
        static let e2m1 = SmallFloat(exponentBits: 2, mantissaBits: 1, ieeeSpecials: false, maxFinite: 6, nanCode: nil)
    }

    enum Overflow { case infinity, nan, saturate }

    static func encode(_ value: Float, _ format: SmallFloat, overflow: Overflow) -> UInt32 {
        let sign: UInt32 = value.sign == .minus ? format.signBit : 0
        if value.isNaN { return sign | (format.nanCode ?? 0) }
        let magnitude = value.magnitude
        let rounded: Float
        if magnitude.isInfinite {
            rounded = .infinity
        } else {
            // The spacing of representable values around `magnitude`; fixed below the normal range.
            let exponent = max(Int(magnitude.exponent), format.minNormalExponent)
            let quantum = Float(sign: .plus, exponent: exponent - format.mantissaBits, significand: 1)
            rounded = magnitude == 0 ? 0 : (magnitude / quantum).rounded(.toNearestOrEven) * quantum
        }
        if rounded > format.maxFinite {
            switch overflow {
            case .infinity: return sign | format.infinityCode
            case .nan: return sign | (format.nanCode ?? 0)
            case .saturate: return sign | bitsOfRepresentable(format.maxFinite, format)
            }
        }
        return sign | bitsOfRepresentable(rounded, format)
    }

    /// The code of a non-negative value that the format represents exactly.
    private static func bitsOfRepresentable(_ magnitude: Float, _ format: SmallFloat) -> UInt32 {
        if magnitude == 0 { return 0 }
        let exponent = Int(magnitude.exponent)
        if exponent < format.minNormalExponent {
            let quantum = Float(sign: .plus, exponent: format.minNormalExponent - format.mantissaBits, significand: 1)
            return UInt32(magnitude / quantum)
        }
        let fraction = magnitude.significand - 1  // in [0, 1)
        let mantissa = UInt32(fraction * Float(1 << format.mantissaBits))
        return UInt32(exponent + format.bias) << UInt32(format.mantissaBits) | mantissa
    }

    static func decode(_ bits: UInt32, _ format: SmallFloat) -> Float {
        let mantissaMask = UInt32(1 << format.mantissaBits) - 1
        let exponentField = Int((bits >> UInt32(format.mantissaBits)) & UInt32((1 << format.exponentBits) - 1))
        let mantissa = bits & mantissaMask
        let sign: FloatingPointSign = bits & format.signBit != 0 ? .minus : .plus
        if format.ieeeSpecials && exponentField == (1 << format.exponentBits) - 1 {
            return mantissa == 0 ? (sign == .minus ? -.infinity : .infinity) : .nan
        }
        if let nan = format.nanCode, !format.ieeeSpecials, bits & ~format.signBit == nan { return .nan }
        let scale = Float(1 << format.mantissaBits)
        let magnitude: Float
        if exponentField == 0 {
            magnitude = Float(mantissa) / scale * Float(sign: .plus, exponent: format.minNormalExponent, significand: 1)
        } else {
            magnitude = (1 + Float(mantissa) / scale) * Float(sign: .plus, exponent: exponentField - format.bias, significand: 1)
        }
        return sign == .minus ? -magnitude : magnitude
    }
}
