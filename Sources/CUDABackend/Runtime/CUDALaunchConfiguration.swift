/// The bytes of `cuLaunchKernelEx`'s `CUlaunchConfig` (cuda.h, 64-bit) with one `CUlaunchAttribute`:
/// programmatic stream serialization (`CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`, "programmatic dependent
/// launch"), which lets the kernel's blocks start before the kernel queued ahead of it on the stream has finished.
///
/// `CUlaunchConfig`: grid x, y, z, block x, y, z and dynamic shared bytes as `unsigned int`s at 0…24, the stream at 32,
/// the attribute array at 40, the attribute count at 48 (56 bytes). `CUlaunchAttribute`: the id (`unsigned int`) at 0,
/// a 64-byte value union at 8 (72 bytes), whose `int programmaticStreamSerializationAllowed` is at its start.
struct CUDALaunchConfiguration {
    static let configurationBytes = 56
    static let attributeBytes = 72
    /// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`.
    static let programmaticStreamSerialization: UInt32 = 6

    let grid: CUDADim3
    let block: CUDADim3
    let sharedMemoryBytes: Int
    let stream: CUstream?

    /// Calls `body` with a `CUlaunchConfig` that allows programmatic dependent launch, valid during the call (the
    /// configuration and its attribute share one stack allocation: this runs on every early-launched kernel).
    func withDependentLaunchConfiguration<R>(_ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: Self.configurationBytes + Self.attributeBytes, alignment: 8) { storage in
            let configuration = storage.baseAddress!
            let attribute = configuration + Self.configurationBytes
            storage.initializeMemory(as: UInt8.self, repeating: 0)
            attribute.storeBytes(of: Self.programmaticStreamSerialization, as: UInt32.self)
            attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
            for (index, value) in [grid.x, grid.y, grid.z, block.x, block.y, block.z, sharedMemoryBytes].enumerated() {
                configuration.storeBytes(of: UInt32(value), toByteOffset: 4 * index, as: UInt32.self)
            }
            configuration.storeBytes(of: UInt(bitPattern: stream.map { UnsafeMutableRawPointer($0) }), toByteOffset: 32, as: UInt.self)
            configuration.storeBytes(of: UInt(bitPattern: attribute), toByteOffset: 40, as: UInt.self)
            configuration.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
            return try body(UnsafeRawPointer(configuration))
        }
    }
}
