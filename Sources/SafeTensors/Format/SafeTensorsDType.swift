import NunchakuCore

/// Every element type the safetensors format names (the list of safetensors 0.8).
///
/// This is wider than `DType`: a file may hold dtypes the engine does not compute with
/// (MX 6-bit floats, AMD's FNUZ float8 kinds, complex64). Those can still be listed, copied and
/// written as raw bytes; only `coreDType` tells whether they convert to a `Tensor`.
public enum SafeTensorsDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL"
    /// 4-bit float E2M1 (MXFP4/NVFP4 elements), two per byte, the even element in the low nibble.
    case f4 = "F4"
    /// 6-bit float E2M3 (MXFP6).
    case f6e2m3 = "F6_E2M3"
    /// 6-bit float E3M2 (MXFP6).
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    /// float8 e4m3fn (PyTorch `float8_e4m3fn`).
    case f8e4m3 = "F8_E4M3"
    /// float8 e8m0fnu (MX block scales).
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    /// Complex number of two float32 parts.
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// The name written in the header (`F32`, `BF16`, `F8_E4M3`, …).
    public var name: String { rawValue }
    public var description: String { rawValue }

    /// The dtype for a header name, or nil when the format does not know it.
    public init?(name: String) {
        self.init(rawValue: name)
    }

    /// Bits one element occupies (4 for `F4`, 6 for the `F6` kinds).
    public var bitWidth: Int {
        switch self {
        case .f4: 4
        case .f6e2m3, .f6e3m2: 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .c64, .f64, .i64, .u64: 64
        }
    }

    /// The position in the format's alignment order. Python's writer lays tensors out by descending
    /// rank (then by name), so wide dtypes come first and every tensor stays naturally aligned.
    var alignmentRank: Int { Self.allCases.firstIndex(of: self)! }

    /// The engine dtype with the same bytes, or nil for kinds the engine does not compute with.
    public var coreDType: DType? {
        switch self {
        case .bool: .bool
        case .f4: .fp4e2m1
        case .u8: .u8
        case .i8: .i8
        case .f8e5m2: .f8e5m2
        case .f8e4m3: .f8e4m3fn
        case .f8e8m0: .f8e8m0
        case .i16: .i16
        case .u16: .u16
        case .f16: .f16
        case .bf16: .bf16
        case .i32: .i32
        case .u32: .u32
        case .f32: .f32
        case .f64: .f64
        case .i64: .i64
        case .u64: .u64
        case .f6e2m3, .f6e3m2, .f8e4m3fnuz, .f8e5m2fnuz, .c64: nil
        }
    }

    /// The safetensors dtype that stores an engine dtype, or nil for the packed integer 4-bit kinds
    /// (which the format has no name for; store them as `I8`/`U8` bytes).
    public init?(_ dtype: DType) {
        guard let name = dtype.safetensorsName, let match = SafeTensorsDType(name: name) else { return nil }
        self = match
    }

    /// The outcome of sizing a tensor of this dtype.
    public enum Sizing: Equatable, Sendable {
        /// The tensor occupies this many bytes.
        case bytes(Int)
        /// The element count or bit count does not fit in an `Int`.
        case overflow
        /// The elements do not fill a whole number of bytes (sub-byte dtypes only).
        case partialByte(bits: Int)
    }

    /// The bytes a tensor of `shape` occupies, by the format's rule: element count × bit width must be
    /// a multiple of 8 (so an `F4` tensor needs an even element count), and the size is that over 8.
    public func sizing(forShape shape: [Int]) -> Sizing {
        var elements = 1
        for dimension in shape {
            guard dimension >= 0 else { return .overflow }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            if overflow { return .overflow }
            elements = product
        }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: bitWidth)
        if overflow { return .overflow }
        return bits % 8 == 0 ? .bytes(bits / 8) : .partialByte(bits: bits)
    }
}
