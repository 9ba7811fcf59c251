import CPUBackend
import NunchakuCore

/// An SVDQuant W4A4 linear on the CPU, reproducing Nunchaku's kernels step by step (research/nunchaku-internals.md
/// §3): the quantize step (smoothing, per-group 4-bit activation quantization, low-rank down on the raw input) and
/// the GEMM step (group-scaled 4-bit products, `wtscale`, `wcscales`, bias, low-rank up in fp32 with a 16-bit
/// intermediate, output in the activation dtype). The steps are public so GPU kernels can be checked against each.
///
/// Activations are bf16 or f16 [..., K]. The weights' 16-bit tensors are used in the activation dtype: when it
/// differs from `weights.weightDType` they are converted per call (saturating at the f16 range, like Nunchaku's
/// `convert_fp16`).
public struct SVDQW4A4Linear: LinearLayer {
    public let weights: SVDQW4A4Weights
    /// The 16-bit tensors in the weights' own dtype.
    private let native: PreparedWeights

    public var name: String { weights.name }
    public var inFeatures: Int { weights.inFeatures }
    public var outFeatures: Int { weights.outFeatures }

    public init(weights: SVDQW4A4Weights) {
        self.weights = weights
        self.native = PreparedWeights(weights, type: weights.weightDType)
    }

    /// Quantize, then multiply.
    public func forward(_ x: Tensor) throws -> Tensor {
        let quantized = try quantize(x)
        let output = try multiply(quantized)
        return try output.reshaped(LinearInput.outputShape(x, outFeatures: outFeatures))
    }

    /// The quantize step on [..., K] activations (flattened to M rows).
    /// - Throws: `NunchakuError` naming the layer when `x` is not bf16/f16 or its last dimension is not K.
    public func quantize(_ x: Tensor) throws -> QuantizedActivations {
        let rows = try LinearInput.rows(x, inFeatures: inFeatures, layer: name, allowed: [.bf16, .f16])
        let type = ActivationDType(x.dtype)!
        let prepared = try preparedWeights(for: type)
        let values = TensorValues.floats(x)
        let (codes, scales) = ActivationQuantizer.quantize(
            values, rows: rows, k: inFeatures, smooth: prepared.smooth, precision: weights.precision,
            unsigned: weights.actUnsigned, type: type)
        let lowRank = weights.rank == 0
            ? [] : Matmul.multiplyTransposed(values, prepared.projDownTransposed, m: rows, n: weights.rank, k: inFeatures)
        return try QuantizedActivations(
            precision: weights.precision, activationDType: type, unsigned: weights.actUnsigned, codes: codes,
            scales: scales, lowRank: Tensor(lowRank, shape: [rows, weights.rank]))
    }

    /// The GEMM step: [M, N] output in the activation dtype of `activations`.
    /// - Throws: `NunchakuError` when `activations` do not come from a layer of this shape, precision and mode.
    public func multiply(_ activations: QuantizedActivations) throws -> Tensor {
        guard activations.precision == weights.precision, activations.unsigned == weights.actUnsigned,
              activations.inFeatures == inFeatures, activations.rank == weights.rank
        else {
            throw NunchakuError.invalidArgument(
                context: name,
                reason: "quantized activations (\(activations.precision), unsigned \(activations.unsigned), K \(activations.inFeatures), R \(activations.rank)) do not match the layer (\(weights.precision), unsigned \(weights.actUnsigned), K \(inFeatures), R \(weights.rank))")
        }
        let type = activations.activationDType
        let prepared = try preparedWeights(for: type)
        let rows = activations.rows
        var output = W4A4GEMM.multiply(W4A4GEMM.Operands(
            precision: weights.precision, type: type, rows: rows, outFeatures: outFeatures, inFeatures: inFeatures,
            unsignedActivations: weights.actUnsigned, activationCodes: activations.codes,
            activationScales: TensorValues.floats(activations.scales), weightCodes: weights.canonical.qweight,
            weightScales: prepared.weightScalesTransposed, wtscale: weights.wtscale, wcscales: prepared.wcscales,
            bias: prepared.bias))
        if weights.rank > 0 {
            // EpilogueLoraUp: the 16-bit result goes to fp32, gains half(lora_act) · proj_upᵀ, rounds back.
            let lowRank = activations.lowRank.floats().map { type.round($0) }
            lowRank.withUnsafeBufferPointer { a in
                prepared.projUp.withUnsafeBufferPointer { b in
                    output.withUnsafeMutableBufferPointer { c in
                        Matmul.multiplyTransposed(
                            a.baseAddress!, b.baseAddress!, into: c.baseAddress!, m: rows, n: outFeatures,
                            k: weights.rank, accumulate: true)
                    }
                }
            }
        }
        return TensorValues.tensor(output.map { Self.store($0, type) }, shape: [rows, outFeatures], dtype: type.dtype)
    }

    /// `EpilogueDefault`: rounds to the 16-bit type; f16 results are clamped to ±65504 with `__hmin`/`__hmax`,
    /// which also turns NaN into 65504.
    @inline(__always)
    static func store(_ value: Float, _ type: ActivationDType) -> Float {
        let rounded = type.round(value)
        guard type == .f16 else { return rounded }
        if rounded.isNaN { return 65504 }
        return min(max(rounded, -65504), 65504)
    }

    /// The weights in `type`; converting may underflow a smoothing factor, which would divide by zero.
    private func preparedWeights(for type: ActivationDType) throws -> PreparedWeights {
        if type == native.type { return native }
        let converted = PreparedWeights(weights, type: type)
        if let index = converted.smooth.firstIndex(of: 0) {
            throw NunchakuError.invalidArgument(context: "\(name).smooth", reason: "element \(index) underflows to 0 in \(type)")
        }
        return converted
    }
}

/// A layer's 16-bit tensors as `Float` values of the activation dtype, in the orders the CPU loops want.
private struct PreparedWeights: Sendable {
    let type: ActivationDType
    /// [K]
    let smooth: [Float]
    /// [N, K/G]
    let weightScalesTransposed: [Float]
    let wcscales: [Float]?
    let bias: [Float]?
    /// [R, K]
    let projDownTransposed: [Float]
    /// [N, R]
    let projUp: [Float]

    init(_ weights: SVDQW4A4Weights, type: ActivationDType) {
        func values(_ tensor: Tensor) -> [Float] {
            let floats = TensorValues.floats(tensor)
            return ActivationDType(tensor.dtype) == type ? floats : floats.map { type.roundSaturating($0) }
        }
        let tensors = weights.canonical
        let groups = weights.inFeatures / weights.groupSize
        self.type = type
        smooth = values(tensors.smooth)
        let scales = weights.precision == .int4 ? values(tensors.wscales) : TensorValues.floats(tensors.wscales)
        weightScalesTransposed = Matmul.transpose(scales, rows: groups, columns: weights.outFeatures)
        wcscales = tensors.wcscales.map(values)
        bias = tensors.bias.map(values)
        projDownTransposed = Matmul.transpose(values(tensors.projDown), rows: weights.inFeatures, columns: weights.rank)
        projUp = values(tensors.projUp)
    }
}
