/// A grid or block size.
public struct CUDADim3: Sendable, Equatable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var z: Int

    public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
        self.x = x
        self.y = y
        self.z = z
    }

    public var description: String { "(\(x), \(y), \(z))" }
}

/// A compiled kernel of a loaded module, ready to launch.
public struct CUDAKernel: @unchecked Sendable {
    /// The kernel's (unmangled) name.
    public let name: String
    let handle: ContextHandle
    let function: CUfunction
    /// Keeps the module loaded while the kernel can be launched.
    let module: CUDAModule

    /// Queues the kernel on `stream`.
    /// - Parameters:
    ///   - sharedMemoryBytes: dynamic shared memory per block; above 48 KiB call `setMaxDynamicSharedMemory` first.
    ///   - arguments: one value per kernel parameter, in order, matching the C++ types.
    ///   - overlappingPredecessor: programmatic dependent launch (sm_90+): the kernel's blocks may start while the
    ///     kernel queued before it on `stream` is still running (as that kernel's blocks exit, or once they all execute
    ///     `griddepcontrol.launch_dependents`). Only for kernels that execute `griddepcontrol.wait` before they write
    ///     any memory and before they read memory that earlier work on the stream writes; a plain launch where the
    ///     driver lacks `cuLaunchKernelEx` (the results are the same, only later).
    /// - Throws: `CUDAError.invalidArgument` for empty or oversized dimensions, `.driverCall` naming the kernel when the
    ///   driver refuses the launch. Faults inside the kernel surface at the next synchronisation.
    public func launch(grid: CUDADim3, block: CUDADim3, sharedMemoryBytes: Int = 0, stream: CUDAStream,
                       arguments: [KernelArgument], overlappingPredecessor: Bool = false) throws {
        let dimensions = [grid.x, grid.y, grid.z, block.x, block.y, block.z]
        guard dimensions.allSatisfy({ $0 > 0 && $0 <= Int(UInt32.max) }), sharedMemoryBytes >= 0,
              sharedMemoryBytes <= Int(UInt32.max) else {
            throw CUDAError.invalidArgument(
                context: "launch \(name)", reason: "grid \(grid), block \(block), shared \(sharedMemoryBytes) bytes: sizes must be positive")
        }
        guard stream.handle === handle else {
            throw CUDAError.invalidArgument(context: "launch \(name)", reason: "the stream belongs to another device")
        }
        let pack = try KernelArgumentPack(arguments)
        try handle.makeCurrent()
        let api = handle.driver.api
        let dependentLaunch = overlappingPredecessor ? api.cuLaunchKernelEx : nil
        let result = pack.withParameterPointers { parameters in
            guard let dependentLaunch else {
                return api.cuLaunchKernel(
                    function, UInt32(grid.x), UInt32(grid.y), UInt32(grid.z), UInt32(block.x), UInt32(block.y), UInt32(block.z),
                    UInt32(sharedMemoryBytes), stream.stream, parameters, nil)
            }
            return CUDALaunchConfiguration(grid: grid, block: block, sharedMemoryBytes: sharedMemoryBytes, stream: stream.stream)
                .withDependentLaunchConfiguration { dependentLaunch($0, function, parameters, nil) }
        }
        let call = dependentLaunch == nil ? "cuLaunchKernel" : "cuLaunchKernelEx (programmatic dependent launch)"
        try handle.driver.check(result, "\(call)(\(name), grid \(grid), block \(block), shared \(sharedMemoryBytes) bytes)")
    }

    /// Allows launches with up to `bytes` of dynamic shared memory (needed above 48 KiB, up to the device's opt-in limit).
    public func setMaxDynamicSharedMemory(_ bytes: Int) throws {
        try handle.call("cuFuncSetAttribute(\(name), MAX_DYNAMIC_SHARED_SIZE_BYTES=\(bytes))") {
            $0.cuFuncSetAttribute(function, CUDAFunctionAttribute.maxDynamicSharedBytes, Int32(clamping: bytes))
        }
    }

    /// What the compiler gave the kernel: registers per thread, static shared and local (spill) bytes, thread limit.
    public func resources() throws -> (registers: Int, staticSharedBytes: Int, localBytes: Int, maxThreadsPerBlock: Int) {
        func attribute(_ attribute: Int32, _ label: String) throws -> Int {
            var value: Int32 = 0
            try handle.call("cuFuncGetAttribute(\(name), \(label))") { $0.cuFuncGetAttribute(&value, attribute, function) }
            return Int(value)
        }
        return (try attribute(CUDAFunctionAttribute.registerCount, "NUM_REGS"),
                try attribute(CUDAFunctionAttribute.staticSharedBytes, "SHARED_SIZE_BYTES"),
                try attribute(CUDAFunctionAttribute.localBytes, "LOCAL_SIZE_BYTES"),
                try attribute(CUDAFunctionAttribute.maxThreadsPerBlock, "MAX_THREADS_PER_BLOCK"))
    }
}
