import CUDABackend
import NunchakuCore
import SVDQuant

/// A dense linear layer on the GPU: bf16 weight [N, K] and bias [N], run by `CUDAGEMM` (cuBLASLt or our kernel).
struct CUDADenseLinear: Sendable {
    let name: String
    let weight: DeviceTensor
    let bias: DeviceTensor

    /// Uploads `weight` [N, K] and `bias` [N], rounded to bf16 (as `model.to(torch.bfloat16)` does).
    init(name: String, weight: Tensor, bias: Tensor, context: CUDAContext) throws {
        self.name = name
        self.weight = try DeviceTensor(uploading: weight.converted(to: .bf16).contiguous(), context: context)
        self.bias = try DeviceTensor(uploading: bias.converted(to: .bf16).contiguous(), context: context)
    }
}

/// One linear layer of the CUDA FLUX model, in whichever form its checkpoint stores it. Quantized layers keep their
/// 4-bit weights on the GPU and run their own kernels; every form maps bf16 `[..., K]` to bf16 `[..., N]`.
enum FluxCUDALinear: Sendable {
    case dense(CUDADenseLinear)
    case w4a4(CUDASVDQW4A4Linear)
    /// A W4A4 layer (INT4 or NVFP4) with the fast (FP8, sm_90+) numerics.
    case w4a4Fast(CUDASVDQW4A4FastLinear)
    case awq(CUDAAWQW4A16Linear)
    /// Stands in for a layer whose tensors had problems; the load fails before a model holding it is returned.
    case unloaded(String)
    /// A layer that LoRA branches can go onto (every layer of a loaded model; Models/LoRA).
    case adaptable(FluxCUDAAdaptableLinear)

    /// Uploads `host`; W4A4 layers take the fast (FP8) numerics when `fastEngine` is given.
    init(_ host: FluxHostLinear, spec: LinearLayerSpec, context: CUDAContext, fastEngine: CUDAW4A4FastEngine? = nil) throws {
        switch host {
        case let .dense(weight, bias):
            self = .dense(try CUDADenseLinear(name: spec.name, weight: weight, bias: bias, context: context))
        case let .w4a4(weights):
            if let fastEngine {
                self = .w4a4Fast(try CUDASVDQW4A4FastLinear(weights: weights, activationDType: .bf16, engine: fastEngine))
            } else {
                self = .w4a4(try CUDASVDQW4A4Linear(weights: weights, activationDType: .bf16, context: context))
            }
        case let .awq(weights):
            self = .awq(try CUDAAWQW4A16Linear(weights: weights, activationDType: .bf16, context: context))
        case .unloaded:
            self = .unloaded(spec.name)
        }
    }

    /// `x · Wᵀ + b` for bf16 `x` `[..., K]`, into a new tensor `[..., N]` on the context's default stream.
    func callAsFunction(_ x: DeviceTensor, gemm: CUDAGEMM) throws -> DeviceTensor {
        switch self {
        case let .dense(layer):
            return try gemm.linear(x, weight: layer.weight, bias: layer.bias)
        case let .w4a4(layer):
            return try layer.forward(x)
        case let .w4a4Fast(layer):
            return try layer.forward(x)
        case let .awq(layer):
            return try layer.forward(x)
        case let .unloaded(name):
            throw NunchakuError.invalidArgument(context: name, reason: "this layer's tensors could not be loaded")
        case let .adaptable(layer):
            return try layer(x, gemm: gemm)
        }
    }

    /// `layer(input)` into a new tensor `[..., N]`: 16-bit values go through `callAsFunction(_:gemm:)`; quantized
    /// activations (written by their producer for `fastLayer`'s activation pass) go to the fast W4A4 layer.
    /// - Throws: `NunchakuError.invalidArgument` naming the layer for quantized activations when it has no `fastLayer`.
    func callAsFunction(_ input: W4A4FastInput, gemm: CUDAGEMM) throws -> DeviceTensor {
        guard case let .values(x) = input else { return try quantizedInputLayer().forward(input) }
        return try self(x, gemm: gemm)
    }

    /// `y ← y + (x · Wᵀ + b)` for `y` `[..., N]` from the layer's own GEMM epilogue (one rounding of the sum), or
    /// false when this form has none (the caller then adds the layer's output as a separate pass). Fast W4A4 layers
    /// do it.
    func accumulate(_ input: W4A4FastInput, into y: DeviceTensor) throws -> Bool {
        guard let layer = fastLayer else { return try rejectQuantized(input) }
        try layer.forward(input, accumulatingInto: try y.reshaped([y.elementCount / layer.outFeatures, layer.outFeatures]))
        return true
    }

    /// `y ← y + gate ⊙ (x · Wᵀ + b)` for `y` `[1, S, N]` and one sample's `gate` from the layer's own GEMM epilogue
    /// (the gate folded into its channel scale and bias, y as its C), or false when this form or the batch has none
    /// (the caller then runs the layer and a gated add). Fast W4A4 layers do it for a batch of one.
    func gatedAccumulate(_ input: W4A4FastInput, gate: ModulationChunk, into y: DeviceTensor) throws -> Bool {
        guard let layer = fastLayer, y.shape.first == 1, gate.table.shape.first == 1 else { return try rejectQuantized(input) }
        try layer.forward(input, gate: gate, accumulatingInto: try y.reshaped([y.elementCount / layer.outFeatures, layer.outFeatures]))
        return true
    }

    /// `GELU(x · Wᵀ + b)` (tanh form) from the layer's own GEMM epilogue, or nil when this form has none (the
    /// caller then applies GELU as a separate pass). Fast W4A4 layers fuse it.
    func fusedGELU(_ input: W4A4FastInput) throws -> DeviceTensor? {
        guard let layer = fastLayer else {
            _ = try rejectQuantized(input)
            return nil
        }
        return try layer.forward(input, gelu: true)
    }

    /// The fast W4A4 layer that runs this layer's forwards, if any: this layer when it is one, the base of an
    /// adaptable one while no LoRA branch is on it. Its epilogue takes gated residuals (`gatedAccumulate`), and its
    /// activation pass (`CUDASVDQW4A4FastLinear.inputPass`) says how a producer may write its input quantized.
    var fastLayer: CUDASVDQW4A4FastLinear? {
        switch self {
        case let .w4a4Fast(layer): layer
        case let .adaptable(layer): layer.fastLayer
        case .dense, .w4a4, .awq, .unloaded: nil
        }
    }

    /// `fastLayer`, or an error naming the layer (quantized activations reached a layer that cannot read them).
    private func quantizedInputLayer() throws -> CUDASVDQW4A4FastLinear {
        guard let layer = fastLayer else {
            throw NunchakuError.invalidArgument(context: name, reason: "quantized fast W4A4 activations reached a layer that is not a fast W4A4 layer")
        }
        return layer
    }

    /// false for 16-bit input (the caller's separate path reads it); throws for quantized activations when the layer
    /// has no `fastLayer`, and returns false when it has one (the caller's fallback passes them on).
    private func rejectQuantized(_ input: W4A4FastInput) throws -> Bool {
        if case .quantized = input { _ = try quantizedInputLayer() }
        return false
    }

    /// The layer's name (of its weights' first tensor prefix), for errors.
    var name: String {
        switch self {
        case let .dense(layer): layer.name
        case let .w4a4(layer): layer.name
        case let .w4a4Fast(layer): layer.name
        case let .awq(layer): layer.name
        case let .unloaded(name): name
        case let .adaptable(layer): layer.base.name
        }
    }
}
