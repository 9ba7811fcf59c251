/// The element type of a tensor.
///
/// Covers every dtype the safetensors format stores plus the packed 4-bit kinds SVDQuant uses
/// (two codes per byte, the even element in the low nibble).
public enum DType: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case f64, f32, f16, bf16
    /// 8-bit float, 4 exponent bits, 3 mantissa bits, no infinities, NaN = S.1111.111 (max 448).
    case f8e4m3fn
    /// 8-bit float, 5 exponent bits, 2 mantissa bits, IEEE-like (max 57344, has infinities).
    case f8e5m2
    /// 8-bit unsigned power of two (exponent only, bias 127; 0xFF is NaN). MX block scales.
    case f8e8m0
    case i8, u8, i16, u16, i32, u32, i64, u64
    case bool
    /// Packed signed 4-bit integers in [-8, 7], two's complement, two per byte.
    case int4
    /// Packed unsigned 4-bit integers in [0, 15], two per byte.
    case uint4
    /// Packed 4-bit floats (E2M1: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}), sign in bit 3, two per byte.
    case fp4e2m1

    public var description: String { rawValue }

    /// Bits one element occupies in memory.
    public var bitWidth: Int {
        switch self {
        case .f64, .i64, .u64: 64
        case .f32, .i32, .u32: 32
        case .f16, .bf16, .i16, .u16: 16
        case .f8e4m3fn, .f8e5m2, .f8e8m0, .i8, .u8, .bool: 8
        case .int4, .uint4, .fp4e2m1: 4
        }
    }

    /// True for the kinds that store two elements per byte.
    public var isPacked4Bit: Bool { bitWidth == 4 }

    /// True for the floating-point kinds whose values convert to and from `Float`.
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3fn, .f8e5m2, .f8e8m0, .fp4e2m1: true
        default: false
        }
    }

    /// Bytes needed to store `count` elements (packed kinds round up to whole bytes).
    public func byteCount(forElements count: Int) -> Int {
        (count * bitWidth + 7) / 8
    }

    /// The name the safetensors format uses for this dtype (`F32`, `BF16`, `F8_E4M3`, …).
    /// Packed integer 4-bit kinds have no safetensors name and are stored as `U8`/`I8` bytes.
    public var safetensorsName: String? {
        switch self {
        case .f64: "F64"
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .f8e4m3fn: "F8_E4M3"
        case .f8e5m2: "F8_E5M2"
        case .f8e8m0: "F8_E8M0"
        case .i8: "I8"
        case .u8: "U8"
        case .i16: "I16"
        case .u16: "U16"
        case .i32: "I32"
        case .u32: "U32"
        case .i64: "I64"
        case .u64: "U64"
        case .bool: "BOOL"
        case .fp4e2m1: "F4"
        case .int4, .uint4: nil
        }
    }

    /// The dtype for a safetensors dtype name, or nil when the name is unknown.
    public init?(safetensorsName name: String) {
        guard let match = DType.allCases.first(where: { $0.safetensorsName == name }) else { return nil }
        self = match
    }
}
