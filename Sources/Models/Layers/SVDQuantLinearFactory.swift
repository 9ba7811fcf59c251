import CPUBackend
import NunchakuCore
import SVDQuant

/// The factory for Nunchaku SVDQuant checkpoints (merged single files and legacy folders, C++ tensor names):
/// `LinearLayerSpec.Quantization.w4a4` layers from `qweight`, `wscales`, `bias`, `smooth`, `lora_down`, `lora_up`
/// (+ `smooth_orig`, and for NVFP4 `wtscale`, `wcscales`, when present); `.awqW4A16` layers from `qweight`,
/// `wscales`, `wzeros`, `bias`; `.none` layers as plain dense ones (research/nunchaku-internals.md §1.2–1.4).
///
/// This is the one place that reads quantized tensors by name; it goes away once the SVDQuant checkpoint loader
/// builds layer weights by prefix.
public struct SVDQuantLinearFactory: LinearLayerFactory {
    /// How quantized layers compute.
    public enum Mode: String, Sendable, CaseIterable {
        /// Nunchaku's kernel numerics step by step (`SVDQW4A4Linear`, `AWQW4A16Linear`): 4-bit activations,
        /// bf16/f16 activations only.
        case kernelExact
        /// The dense layers the quantized ones stand for (`SVDQW4A4Weights.effectiveWeight()`/`effectiveBias()`,
        /// AWQ `q·scale + zero`), without activation quantization, in any compute dtype: a reference.
        case dequantized
    }

    public let precision: SVDQuantPrecision
    /// The low-rank branch's rank (the `lora_down` width).
    public let rank: Int
    public let mode: Mode

    public init(precision: SVDQuantPrecision, rank: Int, mode: Mode = .kernelExact) {
        self.precision = precision
        self.rank = rank
        self.mode = mode
    }

    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        if spec.quantization != .none, mode == .kernelExact, ActivationDType(computeDType) == nil {
            throw NunchakuError.unsupported(
                context: spec.name,
                reason: "SVDQuant layers quantize bf16 or f16 activations, not \(computeDType); compute in bf16, or use the dequantized mode")
        }
        switch spec.quantization {
        case .none:
            return try DenseLinearFactory().makeLinear(spec, computeDType: computeDType, weights: weights)
        case let .w4a4(inputFollowsGELU):
            guard spec.outputInterleave == nil else {
                throw NunchakuError.unsupported(context: spec.name, reason: "interleaved outputs exist only for AWQ and dense layers")
            }
            return try w4a4(spec, actUnsigned: inputFollowsGELU && precision == .int4, computeDType: computeDType, weights: weights)
        case .awqW4A16:
            return try awq(spec, computeDType: computeDType, weights: weights)
        }
    }

    private static let halfDTypes: [DType] = [.bf16, .f16]

    private func w4a4(_ spec: LinearLayerSpec, actUnsigned: Bool, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let (name, n, k) = (spec.name, spec.outFeatures, spec.inFeatures)
        let problems = weights.problemCount
        let half = Self.halfDTypes
        let tensors = SVDQW4A4Tensors(
            qweight: weights.tensor("\(name).qweight", shape: [n, k / 2], dtypes: [.i8, .u8]),
            wscales: weights.tensor(
                "\(name).wscales", shape: [k / precision.groupSize, n], dtypes: precision == .int4 ? half : [.f8e4m3fn]),
            wtscale: weights.optionalTensor("\(name).wtscale", shape: [1], dtypes: half + [.f32]),
            wcscales: weights.optionalTensor("\(name).wcscales", shape: [n], dtypes: half),
            bias: weights.tensor("\(name).bias", shape: [n], dtypes: half),
            smooth: weights.tensor("\(name).smooth", shape: [k], dtypes: half),
            smoothOrig: weights.optionalTensor("\(name).smooth_orig", shape: [k], dtypes: half),
            projDown: weights.tensor("\(name).lora_down", shape: [k, rank], dtypes: half),
            projUp: weights.tensor("\(name).lora_up", shape: [n, rank], dtypes: half))
        guard weights.problemCount == problems else { return UnloadedLinear(spec) }
        let layer: SVDQW4A4Weights
        do {
            layer = try SVDQW4A4Weights(name: name, tensors: tensors, layout: .nunchaku, actUnsigned: actUnsigned)
        } catch {
            weights.reject(name, reason: "\(error)")
            return UnloadedLinear(spec)
        }
        switch mode {
        case .kernelExact:
            return SVDQW4A4Linear(weights: layer)
        case .dequantized:
            return try DenseLinear(
                name: name, weight: Tensor(layer.effectiveWeight(), shape: [n, k]), bias: Tensor(layer.effectiveBias(), shape: [n]),
                parameterDType: computeDType)
        }
    }

    private func awq(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let (name, n, k) = (spec.name, spec.outFeatures, spec.inFeatures)
        let problems = weights.problemCount
        let half = Self.halfDTypes
        let tensors = AWQW4A16Tensors(
            qweight: weights.tensor("\(name).qweight", shape: [n / 4, k / 2], dtypes: [.i32, .u32]),
            wscales: weights.tensor("\(name).wscales", shape: [k / 64, n], dtypes: half),
            wzeros: weights.tensor("\(name).wzeros", shape: [k / 64, n], dtypes: half),
            bias: weights.tensor("\(name).bias", shape: [n], dtypes: half))
        guard weights.problemCount == problems else { return UnloadedLinear(spec) }
        let layer: AWQW4A16Weights
        do {
            layer = try AWQW4A16Weights(name: name, tensors: tensors, layout: .nunchaku, modulation: spec.outputInterleave)
        } catch {
            weights.reject(name, reason: "\(error)")
            return UnloadedLinear(spec)
        }
        switch mode {
        case .kernelExact:
            return AWQW4A16Linear(weights: layer)
        case .dequantized:
            return try DenseLinear(
                name: name, weight: Tensor(layer.dequantizedWeight(), shape: [n, k]), bias: layer.canonical.bias,
                parameterDType: computeDType)
        }
    }
}
