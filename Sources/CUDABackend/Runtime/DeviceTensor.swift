import NunchakuCore

/// A tensor in device memory: a buffer, a shape and a dtype (row-major, contiguous).
///
/// The main bridge between host `Tensor`s and kernels: upload, pass `argument` to a launch, download.
public struct DeviceTensor: Sendable {
    public let buffer: DeviceBuffer
    public let shape: [Int]
    public let dtype: DType

    /// An uninitialised tensor on `context`'s device, allocated on `stream` (`context.currentStream` when nil).
    public init(shape: [Int], dtype: DType, context: CUDAContext, stream: CUDAStream? = nil) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw NunchakuError.invalidArgument(context: "DeviceTensor", reason: "negative dimension in shape \(shape)")
        }
        let elements = shape.reduce(1, *)
        buffer = try context.memoryPool.allocate(byteCount: dtype.byteCount(forElements: elements),
                                                 stream: stream ?? context.currentStream)
        self.shape = shape
        self.dtype = dtype
    }

    /// A device copy of `tensor` (made contiguous first if it is a strided view), queued on `stream`.
    public init(uploading tensor: Tensor, context: CUDAContext, stream: CUDAStream? = nil) throws {
        try self.init(shape: tensor.shape, dtype: tensor.dtype, context: context, stream: stream)
        try upload(tensor)
    }

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
    /// The bytes the elements occupy.
    public var byteCount: Int { buffer.byteCount }
    /// The device address as a kernel argument.
    public var argument: KernelArgument { buffer.argument }

    /// Overwrites this tensor with `tensor`, which must have the same shape and dtype. Queued on `stream`
    /// (the buffer's own stream when nil); `tensor` may be dropped as soon as this returns.
    public func upload(_ tensor: Tensor, stream: CUDAStream? = nil) throws {
        try checkMatches(tensor, "DeviceTensor.upload")
        try tensor.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            try (stream ?? buffer.workStream).copy(bytes.count, from: base, to: buffer)
        }
    }

    /// A host copy of this tensor. Waits for `stream` (the buffer's own stream when nil), so work queued
    /// there before, kernels included, has finished and any error it raised is thrown here.
    public func download(stream: CUDAStream? = nil) throws -> Tensor {
        var tensor = Tensor(zeros: shape, dtype: dtype)
        let stream = stream ?? buffer.workStream
        try tensor.withUnsafeMutableBytes { bytes in
            if let base = bytes.baseAddress { try stream.copy(bytes.count, from: buffer, to: base) }
        }
        try stream.synchronize()
        return tensor
    }

    /// The same device memory seen with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) throws -> DeviceTensor {
        guard newShape.allSatisfy({ $0 >= 0 }), newShape.reduce(1, *) == elementCount else {
            throw NunchakuError.invalidArgument(context: "DeviceTensor.reshaped", reason: "cannot reshape \(shape) to \(newShape)")
        }
        return DeviceTensor(buffer: buffer, shape: newShape, dtype: dtype)
    }

    /// Rows `range` of the first dimension, as a tensor that shares this one's memory (no copy): the rows of a
    /// row-major tensor are contiguous. Writes through it change this tensor.
    /// - Throws: `NunchakuError.invalidArgument` for a scalar or a range outside `0..<shape[0]`.
    public func rows(_ range: Range<Int>) throws -> DeviceTensor {
        guard let count = shape.first, range.lowerBound >= 0, range.upperBound <= count else {
            throw NunchakuError.invalidArgument(context: "DeviceTensor.rows", reason: "rows \(range) are not inside shape \(shape)")
        }
        let rowBytes = dtype.byteCount(forElements: shape.dropFirst().reduce(1, *))
        let view = try buffer.view(byteOffset: range.lowerBound * rowBytes, byteCount: range.count * rowBytes)
        return DeviceTensor(buffer: view, shape: [range.count] + shape.dropFirst(), dtype: dtype)
    }

    private init(buffer: DeviceBuffer, shape: [Int], dtype: DType) {
        self.buffer = buffer
        self.shape = shape
        self.dtype = dtype
    }

    private func checkMatches(_ tensor: Tensor, _ context: String) throws {
        guard tensor.dtype == dtype else {
            throw NunchakuError.dtypeMismatch(context: context, expected: [dtype], actual: tensor.dtype)
        }
        guard tensor.shape == shape else {
            throw NunchakuError.shapeMismatch(context: context, expected: shape, actual: tensor.shape)
        }
    }
}
