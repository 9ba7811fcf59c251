/// A cubin or PTX image loaded into a context (`cuModuleLoadDataEx`), unloaded when the last kernel from it goes.
final class CUDAModule: @unchecked Sendable {
    let handle: ContextHandle
    let module: CUmodule
    /// For messages: the source file and target the image was built from.
    let label: String

    /// Loads `image` (a cubin, or NUL-terminated PTX that the driver compiles for the device).
    /// - Throws: `CUDAError.moduleLoadFailed` with the driver's JIT error log and, when NVRTC is newer than the
    ///   driver, a hint saying so.
    init(handle: ContextHandle, image: CompiledKernelImage) throws {
        self.handle = handle
        label = "\(image.sourceName) (\(image.target))"
        let logSize = 16 * 1024
        var errorLog = [CChar](repeating: 0, count: logSize)
        var infoLog = [CChar](repeating: 0, count: logSize)
        var module: CUmodule?
        try handle.makeCurrent()
        let result = errorLog.withUnsafeMutableBufferPointer { errorBuffer in
            infoLog.withUnsafeMutableBufferPointer { infoBuffer in
                var options: [Int32] = [CUDAJITOption.errorLogBuffer, CUDAJITOption.errorLogBufferSizeBytes,
                                        CUDAJITOption.infoLogBuffer, CUDAJITOption.infoLogBufferSizeBytes]
                var values: [UnsafeMutableRawPointer?] = [
                    UnsafeMutableRawPointer(errorBuffer.baseAddress), UnsafeMutableRawPointer(bitPattern: logSize),
                    UnsafeMutableRawPointer(infoBuffer.baseAddress), UnsafeMutableRawPointer(bitPattern: logSize),
                ]
                return image.loadableBytes.withUnsafeBytes { bytes in
                    handle.driver.api.cuModuleLoadDataEx(&module, bytes.baseAddress, UInt32(options.count), &options, &values)
                }
            }
        }
        guard result == CUDAResultCode.success, let module else {
            let (name, message) = handle.driver.describe(result)
            let log = String(decoding: errorLog.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let nvrtc = image.compilerVersion
            let hint = nvrtc.major > handle.driver.version.major
                ? "NVRTC \(nvrtc) is newer than the driver's CUDA \(handle.driver.version): use an NVRTC \(handle.driver.version.major).x or update the driver"
                : nil
            throw CUDAError.moduleLoadFailed(source: image.sourceName, target: image.target.description,
                                             driverError: "\(name): \(message)", log: log, hint: hint)
        }
        self.module = module
    }

    deinit {
        if (try? handle.makeCurrent()) != nil { _ = handle.driver.api.cuModuleUnload(module) }
    }

    /// The kernel `name` of this module.
    /// - Throws: `CUDAError.kernelNotFound` when the module does not define it.
    func kernel(named name: String) throws -> CUDAKernel {
        var function: CUfunction?
        try handle.makeCurrent()
        let result = name.withCString { handle.driver.api.cuModuleGetFunction(&function, module, $0) }
        guard result == CUDAResultCode.success, let function else {
            let (errorName, _) = handle.driver.describe(result)
            throw CUDAError.kernelNotFound(name: name, detail: "\(label) does not define it (\(errorName))")
        }
        return CUDAKernel(name: name, handle: handle, function: function, module: self)
    }
}
