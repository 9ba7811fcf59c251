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

    /// The matmul entry points (resolved on first use, so `doctor` can report an old library that lacks some).
    /// - Throws: `NunchakuError.symbolNotFound` naming the first missing entry point.
    func matmulAPI() throws -> CUBLASLtAPI {
        try CUBLASLtAPI(library: library)
    }

    /// `13.1.0` style version.
    public var version: String {
        "\(versionNumber / 10000).\(versionNumber / 100 % 100).\(versionNumber % 100)"
    }
}

/// The cuBLASLt entry points the GEMM wrapper uses (`cublasLt.h`, CUDA 13). Statuses and enums are C `int`s;
/// descriptors are opaque pointers; device addresses go in as raw pointers.
struct CUBLASLtAPI: @unchecked Sendable {
    typealias Status = Int32
    typealias Descriptor = OpaquePointer
    typealias DescriptorOut = UnsafeMutablePointer<Descriptor?>?

    let create: @convention(c) (DescriptorOut) -> Status
    let destroy: @convention(c) (Descriptor?) -> Status
    let getStatusString: @convention(c) (Status) -> UnsafePointer<CChar>?
    let matmulDescCreate: @convention(c) (DescriptorOut, Int32, Int32) -> Status
    let matmulDescDestroy: @convention(c) (Descriptor?) -> Status
    let matmulDescSetAttribute: @convention(c) (Descriptor?, Int32, UnsafeRawPointer?, Int) -> Status
    let matrixLayoutCreate: @convention(c) (DescriptorOut, Int32, UInt64, UInt64, Int64) -> Status
    let matrixLayoutDestroy: @convention(c) (Descriptor?) -> Status
    let preferenceCreate: @convention(c) (DescriptorOut) -> Status
    let preferenceDestroy: @convention(c) (Descriptor?) -> Status
    let preferenceSetAttribute: @convention(c) (Descriptor?, Int32, UnsafeRawPointer?, Int) -> Status
    let algoConfigGetAttribute: @convention(c) (UnsafeRawPointer?, Int32, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>?) -> Status
    let algoGetHeuristic: @convention(c) (
        Descriptor?, Descriptor?, Descriptor?, Descriptor?, Descriptor?, Descriptor?, Descriptor?, Int32,
        UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> Status
    let matmul: @convention(c) (
        Descriptor?, Descriptor?, UnsafeRawPointer?, UnsafeRawPointer?, Descriptor?, UnsafeRawPointer?, Descriptor?,
        UnsafeRawPointer?, UnsafeRawPointer?, Descriptor?, UnsafeMutableRawPointer?, Descriptor?, UnsafeRawPointer?,
        UnsafeMutableRawPointer?, Int, OpaquePointer?) -> Status

    init(library: DynamicLibrary) throws {
        create = try library.function("cublasLtCreate")
        destroy = try library.function("cublasLtDestroy")
        getStatusString = try library.function("cublasLtGetStatusString")
        matmulDescCreate = try library.function("cublasLtMatmulDescCreate")
        matmulDescDestroy = try library.function("cublasLtMatmulDescDestroy")
        matmulDescSetAttribute = try library.function("cublasLtMatmulDescSetAttribute")
        matrixLayoutCreate = try library.function("cublasLtMatrixLayoutCreate")
        matrixLayoutDestroy = try library.function("cublasLtMatrixLayoutDestroy")
        preferenceCreate = try library.function("cublasLtMatmulPreferenceCreate")
        preferenceDestroy = try library.function("cublasLtMatmulPreferenceDestroy")
        preferenceSetAttribute = try library.function("cublasLtMatmulPreferenceSetAttribute")
        algoConfigGetAttribute = try library.function("cublasLtMatmulAlgoConfigGetAttribute")
        algoGetHeuristic = try library.function("cublasLtMatmulAlgoGetHeuristic")
        matmul = try library.function("cublasLtMatmul")
    }
}

/// Constants of `cublasLt.h`, `cublas_api.h` and `library_types.h` (CUDA 13.0) the GEMM wrapper uses.
enum CUBLASLtConstant {
    static let success: Int32 = 0
    /// `CUBLAS_STATUS_NOT_SUPPORTED`: no algorithm for the asked problem and options.
    static let notSupported: Int32 = 15
    /// `cudaDataType_t`.
    static let dataTypeF32: Int32 = 0
    static let dataTypeF16: Int32 = 2
    static let dataTypeBF16: Int32 = 14
    static let dataTypeE4M3: Int32 = 28
    /// `cublasComputeType_t`: `CUBLAS_COMPUTE_32F`.
    static let computeF32: Int32 = 68
    /// `cublasOperation_t`.
    static let operationNone: Int32 = 0
    static let operationTranspose: Int32 = 1
    /// `cublasLtMatmulDescAttributes_t`.
    static let descriptorTransposeA: Int32 = 3
    static let descriptorTransposeB: Int32 = 4
    static let descriptorEpilogue: Int32 = 7
    static let descriptorBiasPointer: Int32 = 8
    static let descriptorAScalePointer: Int32 = 17
    static let descriptorBScalePointer: Int32 = 18
    /// `CUBLASLT_MATMUL_DESC_FAST_ACCUM` (an `int8_t`): FP8 partial sums stay in the tensor cores' accumulator.
    static let descriptorFastAccumulation: Int32 = 25
    static let descriptorAScaleMode: Int32 = 31
    static let descriptorBScaleMode: Int32 = 32
    /// `cublasLtMatmulMatrixScale_t`: `CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F`, one fp32 scale per row of op(A)
    /// and per column of op(B) (cuBLASLt 12.9+).
    static let scaleModeOuterVector: Int32 = 3
    /// `cublasLtEpilogue_t`.
    static let epilogueDefault: Int32 = 1
    static let epilogueBias: Int32 = 4
    static let epilogueGELU: Int32 = 32
    static let epilogueGELUBias: Int32 = 36
    /// `cublasLtMatmulPreferenceAttributes_t`: `CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES` (a `uint64_t`).
    static let preferenceMaxWorkspaceBytes: Int32 = 1
    /// `cublasLtMatmulAlgoConfigAttributes_t` with their C types' sizes, as `CUBLASLtMatmul.describe` prints them:
    /// the algorithm id, tile, split-K count, reduction scheme, CTA swizzling, custom option, stages, cluster shape
    /// (values of cuBLASLt's enums).
    static let algorithmConfigAttributes: [(name: String, attribute: Int32, bytes: Int)] = [
        ("id", 0, 4), ("tile", 1, 4), ("split-k", 2, 4), ("reduction", 3, 4), ("swizzle", 4, 4), ("custom", 5, 4),
        ("stages", 6, 4), ("cluster", 8, 2),
    ]
    /// `sizeof(cublasLtMatmulHeuristicResult_t)`: algo (64 bytes), workspaceSize, state, wavesCount, reserved[4].
    static let heuristicResultBytes = 96
    /// Offset of `state` in `cublasLtMatmulHeuristicResult_t`.
    static let heuristicResultStateOffset = 72
}
