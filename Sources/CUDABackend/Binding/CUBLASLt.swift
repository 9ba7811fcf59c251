import NunchakuCore

/// cuBLASLt, NVIDIA's GEMM library: optional (BF16 GEMMs and baselines), found like NVRTC and loaded with `dlopen`.
public final class CUBLASLt: @unchecked Sendable {
    /// The file the library was loaded from.
    public let libraryPath: String
    /// `cublasLtGetVersion()`: `major * 10000 + minor * 100 + patch`.
    public let versionNumber: Int
    private let library: DynamicLibrary

    /// Loads cuBLASLt from the first of `search`'s candidates that opens.
    /// - Throws: `NunchakuError.libraryNotFound` (every candidate tried) or `.symbolNotFound`.
    public init(search: CUDALibrarySearch = CUDALibrarySearch()) throws {
        library = try DynamicLibrary(firstOf: search.candidates(for: .cublasLt))
        let getVersion: @convention(c) () -> Int = try library.function("cublasLtGetVersion")
        versionNumber = getVersion()
        libraryPath = library.file(definingSymbol: "cublasLtGetVersion") ?? library.name
    }

    /// `13.1.0` style version.
    public var version: String {
        "\(versionNumber / 10000).\(versionNumber / 100 % 100).\(versionNumber % 100)"
    }
}
