import NunchakuCore

/// The CUDA driver, loaded with `dlopen("libcuda.so.1")` and initialised.
///
/// `CUDADriver.shared()` loads it once per process; the failure, if any, is remembered and rethrown, so a machine
/// without a GPU pays for one `dlopen` attempt and every caller gets the same one-line reason.
public final class CUDADriver: @unchecked Sendable {
    /// The file the driver was loaded from.
    public let libraryPath: String
    /// The CUDA version the driver supports (13.0 for driver 580).
    public let version: CUDAVersion
    /// `CUDA_VISIBLE_DEVICES` as this process sees it (the driver applies it; reported for messages).
    public let visibleDevices: String?

    let api: CUDADriverAPI
    private let library: DynamicLibrary

    /// The driver's usual names, tried in order.
    public static let defaultLibraryNames = ["libcuda.so.1", "libcuda.so"]

    /// Loads the driver from the first of `libraryNames` that opens, resolves its entry points and calls `cuInit`.
    /// - Throws: `CUDAError.driverUnavailable` saying why (library missing, symbol missing, `cuInit` failed).
    public init(libraryNames: [String] = CUDADriver.defaultLibraryNames) throws {
        do {
            library = try DynamicLibrary(firstOf: libraryNames)
            api = try CUDADriverAPI(library: library)
        } catch let error as NunchakuError {
            switch error {
            case let .libraryNotFound(candidates, reason):
                throw CUDAError.driverUnavailable(
                    reason: "no NVIDIA driver: could not load \(candidates.joined(separator: " or ")) (\(reason))")
            default:
                throw CUDAError.driverUnavailable(reason: "the driver library is unusable: \(error)")
            }
        }
        libraryPath = library.file(definingSymbol: "cuInit") ?? library.name
        visibleDevices = Environment.value("CUDA_VISIBLE_DEVICES")
        let initResult = api.cuInit(0)
        guard initResult == CUDAResultCode.success else {
            if initResult == CUDAResultCode.noDevice { throw CUDAError.noDevice(visibleDevices: visibleDevices) }
            let (name, message) = Self.describe(initResult, api: api)
            throw CUDAError.driverUnavailable(reason: "cuInit failed: \(name) (\(initResult)): \(message)")
        }
        var encoded: Int32 = 0
        let versionResult = api.cuDriverGetVersion(&encoded)
        version = CUDAVersion(driverEncoded: versionResult == CUDAResultCode.success ? Int(encoded) : 0)
    }

    private static let sharedLock = CUDALock()
    nonisolated(unsafe) private static var sharedResult: Result<CUDADriver, CUDAError>?

    /// The process-wide driver, loaded on first use.
    /// - Throws: the `CUDAError` that loading gave (the same one on every call).
    public static func shared() throws -> CUDADriver {
        try sharedLock.withLock {
            if let sharedResult { return try sharedResult.get() }
            let result: Result<CUDADriver, CUDAError>
            do {
                result = .success(try CUDADriver())
            } catch let error as CUDAError {
                result = .failure(error)
            } catch {
                result = .failure(.driverUnavailable(reason: "\(error)"))
            }
            sharedResult = result
            return try result.get()
        }
    }

    /// The number of devices the driver sees (after `CUDA_VISIBLE_DEVICES`).
    public func deviceCount() throws -> Int {
        var count: Int32 = 0
        try check(api.cuDeviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }

    /// The driver's handle for device `index`, after checking the index exists.
    /// - Throws: `CUDAError.noDevice` or `.invalidDevice` naming the index and how many devices there are.
    func device(at index: Int) throws -> CUdevice {
        let count = try deviceCount()
        guard count > 0 else { throw CUDAError.noDevice(visibleDevices: visibleDevices) }
        guard (0..<count).contains(index) else {
            throw CUDAError.invalidDevice(index: index, count: count, visibleDevices: visibleDevices)
        }
        var device: CUdevice = 0
        try check(api.cuDeviceGet(&device, Int32(index)), "cuDeviceGet(\(index))")
        return device
    }

    /// Throws `CUDAError.driverCall` for any result but success, naming `call` and the driver's text for the code.
    func check(_ result: CUresult, _ call: @autoclosure () -> String) throws {
        guard result != CUDAResultCode.success else { return }
        let (name, message) = Self.describe(result, api: api)
        throw CUDAError.driverCall(call: call(), code: result, name: name, message: message)
    }

    /// The driver's name (`CUDA_ERROR_OUT_OF_MEMORY`) and text for `result`.
    func describe(_ result: CUresult) -> (name: String, message: String) {
        Self.describe(result, api: api)
    }

    private static func describe(_ result: CUresult, api: CUDADriverAPI) -> (name: String, message: String) {
        var name: UnsafePointer<CChar>?
        var message: UnsafePointer<CChar>?
        let nameKnown = api.cuGetErrorName(result, &name) == CUDAResultCode.success
        let messageKnown = api.cuGetErrorString(result, &message) == CUDAResultCode.success
        return (nameKnown ? name.map { String(cString: $0) } ?? "CUresult \(result)" : "CUresult \(result)",
                messageKnown ? message.map { String(cString: $0) } ?? "no description" : "unknown error code")
    }
}
