import NunchakuCore

/// The NVRTC entry points the kernel compiler uses, resolved from `libnvrtc.so.*` with `dlsym`.
struct NVRTCAPI: @unchecked Sendable {
    typealias Program = OpaquePointer
    typealias CStringArray = UnsafePointer<UnsafePointer<CChar>?>?

    static let success: Int32 = 0
    static let compilationError: Int32 = 6

    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let nvrtcGetNumSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    let nvrtcGetSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<Program?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32, CStringArray, CStringArray) -> Int32
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>?) -> Int32
    let nvrtcCompileProgram: @convention(c) (Program?, Int32, CStringArray) -> Int32
    let nvrtcGetProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
    let nvrtcGetProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
    let nvrtcGetPTXSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
    let nvrtcGetPTX: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
    let nvrtcGetCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
    let nvrtcGetCUBIN: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32

    /// Resolves every entry point from `library`.
    /// - Throws: `NunchakuError.symbolNotFound` naming the first symbol the library lacks.
    init(library: DynamicLibrary) throws {
        nvrtcVersion = try library.function("nvrtcVersion")
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
        nvrtcGetNumSupportedArchs = try library.function("nvrtcGetNumSupportedArchs")
        nvrtcGetSupportedArchs = try library.function("nvrtcGetSupportedArchs")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcGetPTXSize = try library.function("nvrtcGetPTXSize")
        nvrtcGetPTX = try library.function("nvrtcGetPTX")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
    }
}
