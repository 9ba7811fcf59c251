import NunchakuCore

/// Fast conversions between tensors and `[Float]` for the dtypes the quantized layers use.
enum TensorValues {
    /// Every float8 e4m3fn value, indexed by its bits.
    private static let e4m3Values: [Float] = (0...UInt8.max).map { FloatFormats.float(e4m3fn: $0) }

    @inline(__always)
    static func float(e4m3fn bits: UInt8) -> Float {
        e4m3Values.withUnsafeBufferPointer { $0[Int(bits)] }
    }

    /// The tensor's elements as `Float`s in row-major order (fast paths for f32, bf16, f16, f8e4m3fn).
    static func floats(_ tensor: Tensor) -> [Float] {
        let count = tensor.elementCount
        switch tensor.dtype {
        case .f32:
            return tensor.floats()
        case .bf16, .f16:
            let type = ActivationDType(tensor.dtype)!
            return tensor.withUnsafeBytes { bytes in
                [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    for index in 0..<count {
                        buffer[index] = type.value(bytes.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
                    }
                    initialized = count
                }
            }
        case .f8e4m3fn:
            return tensor.withUnsafeBytes { bytes in bytes.map { float(e4m3fn: $0) } }
        default:
            return tensor.floats()
        }
    }

    /// A tensor of `dtype` (bf16, f16 or f32) holding `values` rounded to nearest even.
    static func tensor(_ values: [Float], shape: [Int], dtype: DType) -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        guard let type = ActivationDType(dtype) else { return Tensor(values, shape: shape, dtype: dtype) }
        var result = Tensor(zeros: shape, dtype: dtype)
        result.withUnsafeMutableBytes { bytes in
            let words = bytes.bindMemory(to: UInt16.self)
            for index in values.indices { words[index] = type.bits(values[index]) }
        }
        return result
    }

    /// A tensor of float8 e4m3fn codes.
    static func e4m3Tensor(codes: [UInt8], shape: [Int]) -> Tensor {
        bytesTensor(codes, shape: shape, dtype: .f8e4m3fn)
    }

    /// A tensor whose storage is exactly `bytes`.
    static func bytesTensor(_ bytes: [UInt8], shape: [Int], dtype: DType) -> Tensor {
        var result = Tensor(zeros: shape, dtype: dtype)
        precondition(result.byteCount == bytes.count, "\(bytes.count) bytes for \(shape) of \(dtype)")
        result.withUnsafeMutableBytes { destination in
            bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
        }
        return result
    }

    /// The same bytes viewed as another dtype of equal width (no copy when contiguous).
    static func reinterpreted(_ tensor: Tensor, as dtype: DType) throws -> Tensor {
        precondition(dtype.bitWidth == tensor.dtype.bitWidth, "reinterpreting needs equal element widths")
        if dtype == tensor.dtype { return tensor }
        let dense = tensor.contiguous()
        return try Tensor(storage: dense.storage, byteOffset: dense.byteOffset, shape: dense.shape, dtype: dtype)
    }

    /// The tensor's bytes (contiguous copy).
    static func bytes(_ tensor: Tensor) -> [UInt8] {
        tensor.withUnsafeBytes { Array($0) }
    }
}
