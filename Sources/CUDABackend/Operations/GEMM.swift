import NunchakuCore

/// Linear layers `y = x·Wᵀ + bias` for 16-bit activations on one GPU: cuBLASLt when the library loads, our own
/// tensor-core kernel otherwise (or when asked for). Make one per context and keep it: it holds the cuBLASLt
/// handle, its workspace and the plans chosen per shape (the fastest of cuBLASLt's proposals, timed on first use
/// outside a graph capture; `CUBLASLtMatmul`).
///
/// Use it from one stream at a time (the cuBLASLt workspace is shared by its launches).
public final class CUDAGEMM: @unchecked Sendable {
    public let context: CUDAContext
    private let cublasLt: CUBLASLtMatmul?
    /// Why cuBLASLt is not used, when it is not (the library could not be loaded or initialised).
    public let cublasLtUnavailableReason: String?

    /// Prepares both paths; cuBLASLt failing to load or initialise is remembered, not thrown.
    /// - Parameter loadCUBLASLt: false to use only the own kernel.
    public init(context: CUDAContext, loadCUBLASLt: Bool = true) {
        self.context = context
        guard loadCUBLASLt else {
            cublasLt = nil
            cublasLtUnavailableReason = "not requested"
            return
        }
        do {
            cublasLt = try CUBLASLtMatmul(context: context, tunes: true)
            cublasLtUnavailableReason = nil
        } catch {
            cublasLt = nil
            cublasLtUnavailableReason = String(describing: error)
        }
    }

    /// The cuBLASLt version in use, if any.
    public var cublasLtVersion: String? { cublasLt?.library.version }

    /// What cuBLASLt's tuning measured for each shape so far (`CUBLASLtMatmul.tuningLog`); empty without cuBLASLt.
    public var cublasLtTuningLog: [String] { cublasLt?.tuningLog ?? [] }

    /// cuBLASLt when it loaded, else the own kernel.
    public var defaultImplementation: GEMMImplementation { cublasLt == nil ? .mma : .cublasLt }

    /// `output = x·weightᵀ + bias`. `x` is `[..., K]`, `weight` `[N, K]` (a linear layer's weight as stored), `bias`
    /// `[N]` or nil, `output` `[..., N]`, all bf16 or all f16; K and N multiples of 8, any M. Float32 accumulation.
    /// - Parameter implementation: nil for `defaultImplementation`.
    /// - Throws: `NunchakuError` for wrong shapes or dtypes (before launching), `.unsupported` when cuBLASLt is asked
    ///   for but unavailable, `CUDAError` for launch failures.
    public func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor? = nil, into output: DeviceTensor,
                       using implementation: GEMMImplementation? = nil, stream: CUDAStream? = nil) throws {
        let geometry = try GEMMGeometry(x: x.shape, weight: weight.shape, bias: bias?.shape, output: output.shape,
                                        dtypes: (x.dtype, weight.dtype, bias?.dtype, output.dtype))
        for (tensor, name) in [(x, "x"), (weight, "weight")] {
            try OperandCheck.distinct(output, tensor, "linear \(name)")
        }
        guard geometry.m > 0 else { return }
        let stream = stream ?? x.buffer.workStream
        switch implementation ?? defaultImplementation {
        case .mma:
            let kernel = try context.kernels.kernel(geometry.kernelName)
            try kernel.setMaxDynamicSharedMemory(GEMMGeometry.sharedMemoryBytes)
            try kernel.launch(grid: geometry.grid, block: CUDADim3(GEMMGeometry.threadsPerBlock),
                              sharedMemoryBytes: GEMMGeometry.sharedMemoryBytes, stream: stream,
                              arguments: [x.argument, weight.argument, bias.map(\.argument) ?? .pointer(0), output.argument,
                                          .int32(Int32(geometry.m)), .int32(Int32(geometry.n)), .int32(Int32(geometry.k))])
        case .cublasLt:
            guard let cublasLt else {
                throw NunchakuError.unsupported(context: "linear via cuBLASLt", reason: cublasLtUnavailableReason ?? "unavailable")
            }
            try cublasLt.run(geometry, x: x.buffer.address, weight: weight.buffer.address, bias: bias?.buffer.address,
                             output: output.buffer.address, stream: stream)
        }
    }

    /// `linear(_:weight:bias:into:using:stream:)` into a new tensor allocated on the stream.
    public func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor? = nil,
                       using implementation: GEMMImplementation? = nil, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let shape = Array(x.shape.dropLast()) + [weight.shape.first ?? 0]
        let output = try DeviceTensor(shape: shape, dtype: x.dtype, context: context, stream: stream ?? x.buffer.workStream)
        try linear(x, weight: weight, bias: bias, into: output, using: implementation, stream: stream)
        return output
    }
}
