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

    /// `y ← y + (x · Wᵀ + b)` for `y` `[..., N]` from the layer's own GEMM epilogue (one rounding of the sum), or
    /// false when this form has none (the caller then adds the layer's output as a separate pass). Fast W4A4 layers
    /// do it.
    func accumulate(_ x: DeviceTensor, into y: DeviceTensor) throws -> Bool {
        switch self {
        case let .w4a4Fast(layer):
            try layer.forward(x, accumulatingInto: try y.reshaped([y.elementCount / layer.outFeatures, layer.outFeatures]))
            return true
        case let .adaptable(layer): return try layer.accumulate(x, into: y)
        case .dense, .w4a4, .awq, .unloaded: return false
        }
    }

    /// `y ← y + gate ⊙ (x · Wᵀ + b)` for `y` `[1, S, N]` and one sample's `gate` from the layer's own GEMM epilogue
    /// (the gate folded into its channel scale and bias, y as its C), or false when this form or the batch has none
    /// (the caller then runs the layer and a gated add). Fast W4A4 layers do it for a batch of one.
    func gatedAccumulate(_ x: DeviceTensor, gate: ModulationChunk, into y: DeviceTensor) throws -> Bool {
        switch self {
        case let .w4a4Fast(layer):
            guard y.shape.first == 1, gate.table.shape.first == 1 else { return false }
            try layer.forward(x, gate: gate, accumulatingInto: try y.reshaped([y.elementCount / layer.outFeatures, layer.outFeatures]))
            return true
        case let .adaptable(layer): return try layer.gatedAccumulate(x, gate: gate, into: y)
        case .dense, .w4a4, .awq, .unloaded: return false
        }
    }

    /// The fast W4A4 layer whose GEMM epilogue takes this layer's gated residual (`gatedAccumulate`), if any: this
    /// layer when it is one, the base of an adaptable one while no LoRA branch is on it.
    var gatedFastLayer: CUDASVDQW4A4FastLinear? {
        switch self {
        case let .w4a4Fast(layer): layer
        case let .adaptable(layer): layer.gatedFastLayer
        case .dense, .w4a4, .awq, .unloaded: nil
        }
    }

    /// `GELU(x · Wᵀ + b)` (tanh form) from the layer's own GEMM epilogue, or nil when this form has none (the
    /// caller then applies GELU as a separate pass). Fast W4A4 layers fuse it.
    func fusedGELU(_ x: DeviceTensor) throws -> DeviceTensor? {
        switch self {
        case let .w4a4Fast(layer): try layer.forward(x, gelu: true)
        case let .adaptable(layer): try layer.fusedGELU(x)
        case .dense, .w4a4, .awq, .unloaded: nil
        }
    }
}
