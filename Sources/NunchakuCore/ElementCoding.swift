/// Reading and writing single elements of any dtype as `Double`, the common currency of
/// dtype conversion. Packed 4-bit kinds address element `index` as nibble `index % 2` of byte `index / 2`.
enum ElementCoding {
    /// The value of element `index` in `bytes` stored as `dtype`.
    static func read(_ bytes: UnsafeRawBufferPointer, _ dtype: DType, at index: Int) -> Double {
        switch dtype {
        case .f64: Double(bytes.loadUnaligned(fromByteOffset: index * 8, as: Double.self))
        case .f32: Double(bytes.loadUnaligned(fromByteOffset: index * 4, as: Float.self))
        case .f16: Double(FloatFormats.float(f16: bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case .bf16: Double(FloatFormats.float(bf16: bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case .f8e4m3fn: Double(FloatFormats.float(e4m3fn: bytes[index]))
        case .f8e5m2: Double(FloatFormats.float(e5m2: bytes[index]))
        case .f8e8m0: Double(FloatFormats.float(e8m0: bytes[index]))
        case .i8: Double(Int8(bitPattern: bytes[index]))
        case .u8: Double(bytes[index])
        case .bool: bytes[index] != 0 ? 1 : 0
        case .i16: Double(bytes.loadUnaligned(fromByteOffset: index * 2, as: Int16.self))
        case .u16: Double(bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
        case .i32: Double(bytes.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))
        case .u32: Double(bytes.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
        case .i64: Double(bytes.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
        case .u64: Double(bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
        case .int4: Double(Int8(bitPattern: nibble(bytes, index) << 4) >> 4)
        case .uint4: Double(nibble(bytes, index))
        case .fp4e2m1: Double(FloatFormats.float(e2m1: nibble(bytes, index)))
        }
    }

    /// Stores `value` as element `index` of `dtype`, rounding to nearest even for floats and
    /// rounding then clamping to the representable range for integers.
    static func write(_ value: Double, _ dtype: DType, at index: Int, into bytes: UnsafeMutableRawBufferPointer) {
        switch dtype {
        case .f64: bytes.storeBytes(of: value, toByteOffset: index * 8, as: Double.self)
        case .f32: bytes.storeBytes(of: Float(value), toByteOffset: index * 4, as: Float.self)
        case .f16: bytes.storeBytes(of: FloatFormats.f16Bits(Float(value)), toByteOffset: index * 2, as: UInt16.self)
        case .bf16: bytes.storeBytes(of: FloatFormats.bf16Bits(Float(value)), toByteOffset: index * 2, as: UInt16.self)
        case .f8e4m3fn: bytes[index] = FloatFormats.e4m3fnBits(Float(value))
        case .f8e5m2: bytes[index] = FloatFormats.e5m2Bits(Float(value))
        case .f8e8m0: bytes[index] = e8m0Code(value)
        case .i8: bytes[index] = UInt8(bitPattern: clamped(value, Int8.self))
        case .u8: bytes[index] = clamped(value, UInt8.self)
        case .bool: bytes[index] = value != 0 ? 1 : 0
        case .i16: bytes.storeBytes(of: clamped(value, Int16.self), toByteOffset: index * 2, as: Int16.self)
        case .u16: bytes.storeBytes(of: clamped(value, UInt16.self), toByteOffset: index * 2, as: UInt16.self)
        case .i32: bytes.storeBytes(of: clamped(value, Int32.self), toByteOffset: index * 4, as: Int32.self)
        case .u32: bytes.storeBytes(of: clamped(value, UInt32.self), toByteOffset: index * 4, as: UInt32.self)
        case .i64: bytes.storeBytes(of: clamped(value, Int64.self), toByteOffset: index * 8, as: Int64.self)
        case .u64: bytes.storeBytes(of: clamped(value, UInt64.self), toByteOffset: index * 8, as: UInt64.self)
        case .int4: setNibble(UInt8(bitPattern: Int8(max(-8, min(7, value.rounded(.toNearestOrEven))))) & 0xF, bytes, index)
        case .uint4: setNibble(UInt8(max(0, min(15, value.rounded(.toNearestOrEven)))), bytes, index)
        case .fp4e2m1: setNibble(FloatFormats.e2m1Code(Float(value)), bytes, index)
        }
    }

    private static func nibble(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt8 {
        let byte = bytes[index / 2]
        return index % 2 == 0 ? byte & 0xF : byte >> 4
    }

    private static func setNibble(_ code: UInt8, _ bytes: UnsafeMutableRawBufferPointer, _ index: Int) {
        let byte = bytes[index / 2]
        bytes[index / 2] = index % 2 == 0 ? (byte & 0xF0) | code : (byte & 0x0F) | (code << 4)
    }

    /// `value` rounded to the nearest integer and clamped to `T`'s range; NaN gives 0.
    private static func clamped<T: FixedWidthInteger>(_ value: Double, _ type: T.Type) -> T {
        guard !value.isNaN else { return 0 }
        let rounded = value.rounded(.toNearestOrEven)
        if rounded <= Double(T.min) { return T.min }
        if rounded >= Double(T.max) { return T.max }
        return T(rounded)
    }

    /// The e8m0 code of the power of two nearest to `value` on a log scale (values ≤ 0, infinities and NaN give NaN).
    private static func e8m0Code(_ value: Double) -> UInt8 {
        guard value > 0, value.isFinite else { return 0xFF }
        let exponent = Int(value.exponent) + (value.significand >= 2.0.squareRoot() ? 1 : 0)
        return UInt8(max(0, min(254, exponent + 127)))
    }
}
