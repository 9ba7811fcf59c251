/// Copies and fills queued on a stream.
///
/// Copies from or to `PinnedHostBuffer`s are asynchronous: keep both sides alive and untouched until the stream
/// (or an event recorded after the copy) has been synchronised. Copies from ordinary (pageable) host memory return
/// once the bytes are staged, and copies into it return once they have landed, so those host buffers may be reused
/// as soon as the call returns.
extension CUDAStream {
    /// Copies `byteCount` bytes from host memory to `buffer` at `offset`.
    public func copy(_ byteCount: Int, from host: UnsafeRawPointer, to buffer: DeviceBuffer, at offset: Int = 0) throws {
        try checkRange(byteCount, offset, in: buffer, "copy to device")
        guard byteCount > 0 else { return }
        try handle.call("cuMemcpyHtoDAsync_v2(\(byteCount) bytes)") {
            $0.cuMemcpyHtoDAsync(buffer.address + UInt64(offset), host, byteCount, stream)
        }
    }

    /// Copies `byteCount` bytes from `buffer` at `offset` to host memory.
    public func copy(_ byteCount: Int, from buffer: DeviceBuffer, at offset: Int = 0, to host: UnsafeMutableRawPointer) throws {
        try checkRange(byteCount, offset, in: buffer, "copy from device")
        guard byteCount > 0 else { return }
        try handle.call("cuMemcpyDtoHAsync_v2(\(byteCount) bytes)") {
            $0.cuMemcpyDtoHAsync(host, buffer.address + UInt64(offset), byteCount, stream)
        }
    }

    /// Copies `byteCount` bytes between device buffers.
    public func copy(_ byteCount: Int, from source: DeviceBuffer, at sourceOffset: Int = 0,
                     to destination: DeviceBuffer, at destinationOffset: Int = 0) throws {
        try checkRange(byteCount, sourceOffset, in: source, "device copy source")
        try checkRange(byteCount, destinationOffset, in: destination, "device copy destination")
        guard byteCount > 0 else { return }
        try handle.call("cuMemcpyDtoDAsync_v2(\(byteCount) bytes)") {
            $0.cuMemcpyDtoDAsync(destination.address + UInt64(destinationOffset), source.address + UInt64(sourceOffset),
                                 byteCount, stream)
        }
    }

    /// Copies all of `pinned` to the start of `buffer`, asynchronously.
    public func copy(from pinned: PinnedHostBuffer, to buffer: DeviceBuffer) throws {
        try copy(pinned.byteCount, from: UnsafeRawPointer(pinned.bytes.baseAddress!), to: buffer)
    }

    /// Fills `pinned` from the start of `buffer`, asynchronously.
    public func copy(from buffer: DeviceBuffer, to pinned: PinnedHostBuffer) throws {
        try copy(pinned.byteCount, from: buffer, to: pinned.bytes.baseAddress!)
    }

    /// Sets every byte of `buffer` to `byte`.
    public func fill(_ buffer: DeviceBuffer, with byte: UInt8) throws {
        try checkRange(buffer.byteCount, 0, in: buffer, "fill")
        guard buffer.byteCount > 0 else { return }
        try handle.call("cuMemsetD8Async(\(buffer.byteCount) bytes)") {
            $0.cuMemsetD8Async(buffer.address, byte, buffer.byteCount, stream)
        }
    }

    /// Sets every 2-byte element of `buffer` to `value` (bf16 1.0 is `0x3F80`); the size must be even.
    public func fill(_ buffer: DeviceBuffer, withHalfWords value: UInt16) throws {
        try checkRange(buffer.byteCount, 0, in: buffer, "fill")
        guard buffer.byteCount % 2 == 0 else {
            throw CUDAError.invalidArgument(context: "fill", reason: "\(buffer.byteCount) bytes are not whole 2-byte elements")
        }
        guard buffer.byteCount > 0 else { return }
        try handle.call("cuMemsetD16Async(\(buffer.byteCount / 2) elements)") {
            $0.cuMemsetD16Async(buffer.address, value, buffer.byteCount / 2, stream)
        }
    }

    private func checkRange(_ byteCount: Int, _ offset: Int, in buffer: DeviceBuffer, _ context: String) throws {
        guard buffer.pool.handle === handle else {
            throw CUDAError.invalidArgument(context: context, reason: "the buffer lives on another device than the stream")
        }
        guard byteCount >= 0, offset >= 0, offset + byteCount <= buffer.byteCount else {
            throw CUDAError.invalidArgument(
                context: context, reason: "\(byteCount) bytes at offset \(offset) do not fit a buffer of \(buffer.byteCount) bytes")
        }
    }
}
