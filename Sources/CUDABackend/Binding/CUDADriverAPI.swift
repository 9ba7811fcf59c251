import NunchakuCore

/// The CUDA driver entry points the runtime uses, resolved from `libcuda.so.1` with `dlsym`.
///
/// `cuda.h` maps many names to versioned symbols (`cuMemAlloc` → `cuMemAlloc_v2`); a plain `dlsym("cuMemAlloc")`
/// would return the legacy ABI. Each entry below names the symbol `cuda.h` 13.0 binds, with older names as fallbacks
/// only where the signature is unchanged. `size_t` is `Int` (64-bit platforms only).
struct CUDADriverAPI: @unchecked Sendable {
    typealias StringOut = UnsafeMutablePointer<UnsafePointer<CChar>?>?

    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, StringOut) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, StringOut) -> CUresult

    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>?, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>?, CUdevice) -> CUresult

    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUcontext?>?, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRelease: @convention(c) (CUdevice) -> CUresult
    let cuCtxSetCurrent: @convention(c) (CUcontext?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> CUresult

    let cuStreamCreateWithPriority: @convention(c) (UnsafeMutablePointer<CUstream?>?, UInt32, Int32) -> CUresult
    let cuCtxGetStreamPriorityRange: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> CUresult
    let cuStreamDestroy: @convention(c) (CUstream?) -> CUresult
    let cuStreamSynchronize: @convention(c) (CUstream?) -> CUresult
    let cuStreamWaitEvent: @convention(c) (CUstream?, CUevent?, UInt32) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUevent?>?, UInt32) -> CUresult
    let cuEventDestroy: @convention(c) (CUevent?) -> CUresult
    let cuEventRecord: @convention(c) (CUevent?, CUstream?) -> CUresult
    let cuEventSynchronize: @convention(c) (CUevent?) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>?, CUevent?, CUevent?) -> CUresult

    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemAllocAsync: @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int, CUstream?) -> CUresult
    let cuMemFreeAsync: @convention(c) (CUdeviceptr, CUstream?) -> CUresult
    let cuDeviceGetDefaultMemPool: @convention(c) (UnsafeMutablePointer<CUmemoryPool?>?, CUdevice) -> CUresult
    let cuMemPoolSetAttribute: @convention(c) (CUmemoryPool?, Int32, UnsafeMutableRawPointer?) -> CUresult
    let cuMemPoolGetAttribute: @convention(c) (CUmemoryPool?, Int32, UnsafeMutableRawPointer?) -> CUresult
    let cuMemPoolTrimTo: @convention(c) (CUmemoryPool?, Int) -> CUresult
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult

    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUstream?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUstream?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUstream?) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUstream?) -> CUresult
    let cuMemsetD16Async: @convention(c) (CUdeviceptr, UInt16, Int, CUstream?) -> CUresult

    let cuStreamBeginCapture: @convention(c) (CUstream?, Int32) -> CUresult
    let cuStreamEndCapture: @convention(c) (CUstream?, UnsafeMutablePointer<CUgraph?>?) -> CUresult
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<CUgraphExec?>?, CUgraph?, UInt64) -> CUresult
    let cuGraphLaunch: @convention(c) (CUgraphExec?, CUstream?) -> CUresult
    let cuGraphExecDestroy: @convention(c) (CUgraphExec?) -> CUresult
    let cuGraphDestroy: @convention(c) (CUgraph?) -> CUresult

    let cuModuleLoadDataEx: @convention(c) (
        UnsafeMutablePointer<CUmodule?>?, UnsafeRawPointer?, UInt32,
        UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuModuleUnload: @convention(c) (CUmodule?) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUfunction?>?, CUmodule?, UnsafePointer<CChar>?) -> CUresult
    let cuFuncGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUfunction?) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUfunction?, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (
        CUfunction?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUstream?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult

    /// `cuTensorMapEncodeTiled(map, dataType, rank, globalAddress, globalDim, globalStrides, boxDim, elementStrides,
    /// interleave, swizzle, l2Promotion, oobFill)`; the enums are C `int`s. Nil with a driver older than CUDA 12.
    typealias TensorMapEncodeTiled = @convention(c) (
        UnsafeMutableRawPointer?, Int32, UInt32, UnsafeMutableRawPointer?, UnsafePointer<UInt64>?, UnsafePointer<UInt64>?,
        UnsafePointer<UInt32>?, UnsafePointer<UInt32>?, Int32, Int32, Int32, Int32) -> CUresult
    let cuTensorMapEncodeTiled: TensorMapEncodeTiled?

    /// `cuLaunchKernelEx(config, function, kernelParams, extra)`: `config` points at a `CUlaunchConfig`
    /// (`CUDALaunchConfiguration`). Nil with a driver older than CUDA 12.
    typealias LaunchKernelEx = @convention(c) (
        UnsafeRawPointer?, CUfunction?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuLaunchKernelEx: LaunchKernelEx?

    /// Resolves every entry point from `library`.
    /// - Throws: `NunchakuError.symbolNotFound` naming the first symbol the library lacks.
    init(library: DynamicLibrary) throws {
        func resolve<T>(_ names: String...) throws -> T {
            for name in names {
                if let pointer = library.address(of: name) { return unsafeBitCast(pointer, to: T.self) }
            }
            throw NunchakuError.symbolNotFound(library: library.name, symbol: names.joined(separator: " or "))
        }
        cuInit = try resolve("cuInit")
        cuDriverGetVersion = try resolve("cuDriverGetVersion")
        cuGetErrorName = try resolve("cuGetErrorName")
        cuGetErrorString = try resolve("cuGetErrorString")
        cuDeviceGetCount = try resolve("cuDeviceGetCount")
        cuDeviceGet = try resolve("cuDeviceGet")
        cuDeviceGetName = try resolve("cuDeviceGetName")
        cuDeviceGetAttribute = try resolve("cuDeviceGetAttribute")
        cuDeviceTotalMem = try resolve("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try resolve("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try resolve("cuDevicePrimaryCtxRelease_v2")
        cuCtxSetCurrent = try resolve("cuCtxSetCurrent")
        cuCtxSynchronize = try resolve("cuCtxSynchronize")
        cuMemGetInfo = try resolve("cuMemGetInfo_v2")
        cuStreamCreateWithPriority = try resolve("cuStreamCreateWithPriority")
        cuCtxGetStreamPriorityRange = try resolve("cuCtxGetStreamPriorityRange")
        cuStreamDestroy = try resolve("cuStreamDestroy_v2")
        cuStreamSynchronize = try resolve("cuStreamSynchronize")
        cuStreamWaitEvent = try resolve("cuStreamWaitEvent")
        cuEventCreate = try resolve("cuEventCreate")
        cuEventDestroy = try resolve("cuEventDestroy_v2")
        cuEventRecord = try resolve("cuEventRecord")
        cuEventSynchronize = try resolve("cuEventSynchronize")
        cuEventElapsedTime = try resolve("cuEventElapsedTime_v2", "cuEventElapsedTime")
        cuMemAlloc = try resolve("cuMemAlloc_v2")
        cuMemFree = try resolve("cuMemFree_v2")
        cuMemAllocAsync = try resolve("cuMemAllocAsync")
        cuMemFreeAsync = try resolve("cuMemFreeAsync")
        cuDeviceGetDefaultMemPool = try resolve("cuDeviceGetDefaultMemPool")
        cuMemPoolSetAttribute = try resolve("cuMemPoolSetAttribute")
        cuMemPoolGetAttribute = try resolve("cuMemPoolGetAttribute")
        cuMemPoolTrimTo = try resolve("cuMemPoolTrimTo")
        cuMemAllocHost = try resolve("cuMemAllocHost_v2")
        cuMemFreeHost = try resolve("cuMemFreeHost")
        cuMemcpyHtoDAsync = try resolve("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try resolve("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try resolve("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try resolve("cuMemsetD8Async")
        cuMemsetD16Async = try resolve("cuMemsetD16Async")
        // cuda.h: `#define cuStreamBeginCapture __CUDA_API_PTSZ(cuStreamBeginCapture_v2)` (the one with a mode);
        // `cuGraphInstantiate` is a macro for `cuGraphInstantiateWithFlags` since CUDA 12.
        cuStreamBeginCapture = try resolve("cuStreamBeginCapture_v2")
        cuStreamEndCapture = try resolve("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try resolve("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try resolve("cuGraphLaunch")
        cuGraphExecDestroy = try resolve("cuGraphExecDestroy")
        cuGraphDestroy = try resolve("cuGraphDestroy")
        cuModuleLoadDataEx = try resolve("cuModuleLoadDataEx")
        cuModuleUnload = try resolve("cuModuleUnload")
        cuModuleGetFunction = try resolve("cuModuleGetFunction")
        cuFuncGetAttribute = try resolve("cuFuncGetAttribute")
        cuFuncSetAttribute = try resolve("cuFuncSetAttribute")
        cuLaunchKernel = try resolve("cuLaunchKernel")
        cuTensorMapEncodeTiled = library.address(of: "cuTensorMapEncodeTiled").map { unsafeBitCast($0, to: TensorMapEncodeTiled.self) }
        cuLaunchKernelEx = library.address(of: "cuLaunchKernelEx").map { unsafeBitCast($0, to: LaunchKernelEx.self) }
    }
}
