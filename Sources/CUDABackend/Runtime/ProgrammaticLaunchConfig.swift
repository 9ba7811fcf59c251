/// The `CUlaunchConfig` of `cuLaunchKernelEx` with one attribute, `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`
/// = 1: the kernel may start while the kernel before it in the stream is still running (programmatic dependent
/// launch, sm_90+); the kernel itself waits for that grid (`griddepcontrol.wait`) before touching memory.
///
/// Laid out by hand as the C structs are (CUDA 12 `cuda.h`): `CUlaunchConfig` { 7 × u32 grid, block, shared bytes;
/// stream at 32; attribute pointer at 40; u32 count at 48 } (56 bytes); `CUlaunchAttribute` { u32 id; 4 bytes pad;
/// 64-byte value union } (72 bytes).
struct ProgrammaticLaunchConfig {
    static let configBytes = 56
    static let attributeBytes = 72
    /// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`.
    static let programmaticStreamSerialization: UInt32 = 6

    let grid: CUDADim3
    let block: CUDADim3
    let sharedMemoryBytes: Int
    let stream: CUstream

    /// Calls `body` with the address of the filled config (valid only during the call).
    func withPointer<Result>(_ body: (UnsafeRawPointer) -> Result) -> Result {
        let attribute = UnsafeMutableRawPointer.allocate(byteCount: Self.attributeBytes, alignment: 8)
        let config = UnsafeMutableRawPointer.allocate(byteCount: Self.configBytes, alignment: 8)
        defer {
            attribute.deallocate()
            config.deallocate()
        }
        attribute.initializeMemory(as: UInt8.self, repeating: 0, count: Self.attributeBytes)
        attribute.storeBytes(of: Self.programmaticStreamSerialization, as: UInt32.self)
        attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
        config.initializeMemory(as: UInt8.self, repeating: 0, count: Self.configBytes)
        for (index, value) in [grid.x, grid.y, grid.z, block.x, block.y, block.z, sharedMemoryBytes].enumerated() {
            config.storeBytes(of: UInt32(value), toByteOffset: 4 * index, as: UInt32.self)
        }
        config.storeBytes(of: stream, toByteOffset: 32, as: CUstream.self)
        config.storeBytes(of: UnsafeRawPointer(attribute), toByteOffset: 40, as: UnsafeRawPointer.self)
        config.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
        return body(UnsafeRawPointer(config))
    }
}
