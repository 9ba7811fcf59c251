import NunchakuCore

/// What this machine offers for CUDA: driver, devices, NVRTC, cuBLASLt and the kernel cache. Gathering it never
/// throws; every part that is missing carries the one-line reason instead.
public struct CUDASystemReport: Sendable, Codable {
    public struct Driver: Sendable, Codable {
        public var available = false
        public var libraryPath: String?
        /// The CUDA version the driver supports.
        public var cudaVersion: String?
        public var visibleDevices: String?
        public var error: String?
    }

    public struct Device: Sendable, Codable {
        public var info: CUDADeviceInfo
        /// What kernels are built for on this device (`sm_90a`), or why they cannot be.
        public var kernelTarget: String?
        public var kernelTargetError: String?
        public var fourBitPaths: [FourBitCodePath]
    }

    public struct Library: Sendable, Codable {
        public var available = false
        public var path: String?
        public var version: String?
        /// NVRTC only: the builtins library loaded beside it.
        public var builtinsPath: String?
        /// NVRTC only: architectures it builds machine code for.
        public var supportedArchitectures: [Int]?
        public var searchedDirectories: [String] = []
        public var error: String?
    }

    public struct Cache: Sendable, Codable {
        public var enabled: Bool
        public var directory: String?
        public var disabledReason: String?
        public var files: Int
        public var bytes: Int
    }

    public var driver = Driver()
    public var devices: [Device] = []
    /// Set when the driver loaded but listing devices failed.
    public var deviceError: String?
    public var nvrtc = Library()
    public var cublasLt = Library()
    public var kernelCache: Cache

    /// Looks at the driver (`CUDADriver.shared()`), NVRTC (`NVRTC.shared()`), cuBLASLt and `cache`.
    public static func gather(search: CUDALibrarySearch = CUDALibrarySearch(),
                              cache: KernelCache = .fromEnvironment()) -> CUDASystemReport {
        let contents = cache.contents()
        var report = CUDASystemReport(kernelCache: Cache(
            enabled: cache.directory != nil, directory: cache.directory, disabledReason: cache.disabledReason,
            files: contents.files, bytes: contents.bytes))

        report.nvrtc.searchedDirectories = search.directories(for: .nvrtc)
        var architectures: [Int]?
        do {
            let nvrtc = try NVRTC.shared()
            report.nvrtc.available = true
            report.nvrtc.path = nvrtc.libraryPath
            report.nvrtc.version = nvrtc.version.description
            report.nvrtc.builtinsPath = nvrtc.builtinsPath
            report.nvrtc.supportedArchitectures = nvrtc.supportedArchitectures
            architectures = nvrtc.supportedArchitectures
        } catch {
            report.nvrtc.error = "\(error)"
        }

        report.cublasLt.searchedDirectories = search.directories(for: .cublasLt)
        do {
            let cublasLt = try CUBLASLt(search: search)
            report.cublasLt.available = true
            report.cublasLt.path = cublasLt.libraryPath
            report.cublasLt.version = cublasLt.version
        } catch {
            report.cublasLt.error = "\(error)"
        }

        let driver: CUDADriver
        do {
            driver = try CUDADriver.shared()
        } catch {
            report.driver.error = "\(error)"
            report.driver.visibleDevices = Environment.value("CUDA_VISIBLE_DEVICES")
            return report
        }
        report.driver = Driver(available: true, libraryPath: driver.libraryPath, cudaVersion: driver.version.description,
                               visibleDevices: driver.visibleDevices, error: nil)
        do {
            for index in 0..<(try driver.deviceCount()) {
                let info = try driver.deviceInfo(index)
                var device = Device(info: info, fourBitPaths: FourBitFormat.allCases.map {
                    FourBitCodePath.plan($0, on: info.computeCapability)
                })
                if let architectures {
                    do {
                        device.kernelTarget = try CUDATarget.forDevice(info.computeCapability,
                                                                       supportedArchitectures: architectures).description
                    } catch {
                        device.kernelTargetError = "\(error)"
                    }
                } else {
                    device.kernelTargetError = "no NVRTC"
                }
                report.devices.append(device)
            }
        } catch {
            report.deviceError = "\(error)"
        }
        return report
    }
}
