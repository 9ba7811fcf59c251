import CPUBackend
import Models
import NunchakuCore
import Quantizer

/// The two baselines of the evaluation that have no checkpoint format of their own, built at load time from the
/// BF16 weights with the Quantizer's round-to-nearest primitives:
///
/// - `.naiveW4A4`: every block projection that SVDQuant makes W4A4 gets the same INT4 group-64 weight RTN
///   (`WeightQuantizer`) and the runtime's dynamic INT4 activation quantization (`ActivationQuantizer`: signed, or
///   unsigned after the 0.171875 shift for post-GELU inputs, as the kernels do) — but no smoothing and no low-rank
///   branch. The adaLN linears get AWQ W4A16 as in SVDQuant checkpoints.
/// - `.w4a16`: every block linear gets 4-bit group-64 weights (`AWQQuantizer`, asymmetric) and unquantized
///   activations.
///
/// Layers outside the blocks (embedders, `norm_out`, `proj_out`) stay BF16, as in Nunchaku checkpoints. The layers
/// compute the dequantized weights in fp32 on fake-quantized activations (a simulation of the 4-bit kernels, not the
/// kernel-exact path the SVDQuant checkpoints run on).
public struct SimulatedQuantizationFactory: LinearLayerFactory {
    public enum Scheme: String, Sendable { case naiveW4A4, w4a16 }
    public let scheme: Scheme

    public init(scheme: Scheme) { self.scheme = scheme }

    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let floats: [DType] = [.f32, .bf16, .f16, .f64]
        let weightTensor = weights.tensor("\(spec.name).weight", shape: [spec.outFeatures, spec.inFeatures], dtypes: floats)
        let biasTensor = weights.tensor("\(spec.name).bias", shape: [spec.outFeatures], dtypes: floats)
        let weight = try weightTensor.floatValues(context: "\(spec.name).weight")
        let bias = try biasTensor.floatValues(context: "\(spec.name).bias")
        guard weight.count == spec.outFeatures * spec.inFeatures, bias.count == spec.outFeatures else {
            // The reader recorded the problem; the load fails at its end with every problem listed.
            return SimulatedLinear(name: spec.name, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures,
                                   weight: [Float](repeating: 0, count: spec.outFeatures * spec.inFeatures),
                                   bias: [Float](repeating: 0, count: spec.outFeatures), activations: [])
        }
        let role = FluxLinearRole(name: spec.name, inFeatures: spec.inFeatures)
        let quantized: [Float]
        var roundedBias = bias
        switch (role, scheme) {
        case (.outsideBlocks, _):
            // As the BF16 model holds them: parameters rounded to the compute dtype.
            quantized = try Tensor.rounding(weight, shape: [weight.count], to: computeDType).floatValues(context: spec.name)
            roundedBias = try Tensor.rounding(bias, shape: [bias.count], to: computeDType).floatValues(context: spec.name)
        case (.modulation, _), (_, .w4a16):
            quantized = try AWQQuantizer.quantize(
                name: spec.name, weight: weight, outFeatures: spec.outFeatures, inFeatures: spec.inFeatures, bias: bias
            ).dequantizedWeight()
        case let (.projection(segments), .naiveW4A4):
            return try SimulatedLinear.naiveW4A4(
                name: spec.name, weight: weight, bias: bias, outFeatures: spec.outFeatures, inFeatures: spec.inFeatures,
                segments: segments)
        }
        return SimulatedLinear(name: spec.name, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures,
                               weight: quantized, bias: roundedBias, activations: [])
    }
}

/// A column range of a layer's input and how the runtime quantizes it.
struct ActivationSegment: Sendable, Equatable {
    let columns: Range<Int>
    let postGELU: Bool
}

/// What a diffusers FLUX linear is, for quantization: outside the blocks, an adaLN modulation, or a block
/// projection (with the column ranges whose input follows a GELU).
enum FluxLinearRole: Sendable, Equatable {
    case outsideBlocks
    case modulation
    case projection([ActivationSegment])

    init(name: String, inFeatures: Int) {
        let single = name.hasPrefix("single_transformer_blocks.")
        guard single || name.hasPrefix("transformer_blocks.") else {
            self = .outsideBlocks
            return
        }
        if name.hasSuffix(".norm1.linear") || name.hasSuffix(".norm1_context.linear") || name.hasSuffix(".norm.linear") {
            self = .modulation
        } else if name.hasSuffix(".ff.net.2") || name.hasSuffix(".ff_context.net.2") {
            self = .projection([ActivationSegment(columns: 0..<inFeatures, postGELU: true)])
        } else if single && name.hasSuffix(".proj_out") {
            // [attention ‖ GELU(mlp)]: the attention part is as wide as the output (the hidden width).
            let hidden = inFeatures / 5
            self = .projection([ActivationSegment(columns: 0..<hidden, postGELU: false),
                                ActivationSegment(columns: hidden..<inFeatures, postGELU: true)])
        } else {
            self = .projection([ActivationSegment(columns: 0..<inFeatures, postGELU: false)])
        }
    }
}

/// `y = Qa(x) · Ŵᵀ + b` with Ŵ the dequantized 4-bit weight and Qa the runtime's activation quantization per
/// segment (none when `activations` is empty), accumulated in fp32 and rounded once to the activation dtype.
struct SimulatedLinear: LinearLayer {
    let name: String
    let inFeatures: Int
    let outFeatures: Int
    let weight: [Float]
    let bias: [Float]
    let activations: [ActivationSegment]

    /// INT4 g64 RTN weights and the runtime's activation quantization per segment. Post-GELU segments are
    /// quantized unsigned after the 0.171875 shift; the shift is taken back through the full-precision weight, as
    /// the stored bias of such layers does (`b − W·c`, research §3.6).
    static func naiveW4A4(name: String, weight: [Float], bias: [Float], outFeatures: Int, inFeatures: Int,
                          segments: [ActivationSegment]) throws -> SimulatedLinear {
        let quantized = try WeightQuantizer.quantize(weight, rows: outFeatures, columns: inFeatures, format: .int4).dequantized
        var corrected = bias
        for segment in segments where segment.postGELU {
            for row in 0..<outFeatures {
                var sum: Float = 0
                for column in segment.columns { sum += quantized[row * inFeatures + column] - weight[row * inFeatures + column] }
                corrected[row] += postGELUShift * sum
            }
        }
        return SimulatedLinear(name: name, inFeatures: inFeatures, outFeatures: outFeatures, weight: quantized,
                               bias: corrected, activations: segments)
    }

    func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == inFeatures else {
            throw NunchakuError.shapeMismatch(context: name, expected: [x.shape.first ?? 0, inFeatures], actual: x.shape)
        }
        let rows = x.shape[0]
        var input = try x.floatValues(context: name)
        for segment in activations {
            input = try Self.fakeQuantize(input, rows: rows, columns: inFeatures, segment: segment)
        }
        var output = Matmul.multiplyTransposed(input, weight, m: rows, n: outFeatures, k: inFeatures)
        for row in 0..<rows {
            for column in 0..<outFeatures { output[row * outFeatures + column] += bias[column] }
        }
        return Tensor.rounding(output, shape: [rows, outFeatures], to: x.dtype)
    }

    /// The segment's columns replaced by their INT4 fake-quantized values (post-GELU: shifted by 0.171875,
    /// quantized unsigned, shifted back).
    static func fakeQuantize(_ x: [Float], rows: Int, columns: Int, segment: ActivationSegment) throws -> [Float] {
        let width = segment.columns.count
        let shift: Float = segment.postGELU ? postGELUShift : 0
        var slice = [Float](repeating: 0, count: rows * width)
        for row in 0..<rows {
            for column in 0..<width { slice[row * width + column] = x[row * columns + segment.columns.lowerBound + column] + shift }
        }
        let quantizer = ActivationQuantizer(format: .int4, inputKind: segment.postGELU ? .postGELU : .general)
        let quantized = try quantizer.fakeQuantize(slice, rows: rows, columns: width)
        var result = x
        for row in 0..<rows {
            for column in 0..<width {
                result[row * columns + segment.columns.lowerBound + column] = quantized[row * width + column] - shift
            }
        }
        return result
    }
}
