import CPUBackend
import Models
import NunchakuCore
import SVDQuant

/// Builds the linears of a Nunchaku FLUX checkpoint for `FluxTransformer(layout: .nunchaku)` on the CPU, to check a
/// quantized file against the model it came from: layers with `wzeros` become `AWQW4A16Linear`s (modulation outputs
/// put back into Nunchaku's interleaved order, which the Nunchaku layout of the model expects), layers with
/// `qweight` become `SVDQW4A4Linear`s (INT4 `mlp_fc2`/`mlp_context_fc2` with unsigned activations), and the rest
/// plain dense layers. Every tensor a layer owns is taken, so a strict load reports missing and extra ones.
public struct NunchakuCheckpointLinearFactory: LinearLayerFactory {
    public let format: W4A4Format
    public let rank: Int

    public init(format: W4A4Format, rank: Int) {
        self.format = format
        self.rank = rank
    }

    public func makeLinear(
        name: String, inFeatures: Int, outFeatures: Int, computeDType: DType, weights: WeightReader
    ) throws -> any LinearLayer {
        let n = outFeatures, k = inFeatures
        if weights.contains("\(name).wzeros") {
            let tensors = AWQW4A16Tensors(
                qweight: weights.tensor("\(name).qweight", shape: [n / 4, k / 2], dtypes: [.i32]),
                wscales: weights.tensor("\(name).wscales", shape: [k / 64, n], dtypes: [.bf16]),
                wzeros: weights.tensor("\(name).wzeros", shape: [k / 64, n], dtypes: [.bf16]),
                bias: weights.tensor("\(name).bias", shape: [n], dtypes: [.bf16]))
            let modulation = try ModulationInterleave(chunks: n / k)
            let layer = AWQW4A16Linear(weights: try AWQW4A16Weights(name: name, tensors: tensors, layout: .nunchaku, modulation: modulation))
            return InterleavedOutputs(base: layer, modulation: modulation)
        }
        guard weights.contains("\(name).qweight") else {
            return try MappedDenseLinearFactory().makeLinear(
                name: name, inFeatures: k, outFeatures: n, computeDType: computeDType, weights: weights)
        }
        let group = format.groupSize
        let nvfp4 = format == .nvfp4
        let tensors = SVDQW4A4Tensors(
            qweight: weights.tensor("\(name).qweight", shape: [n, k / 2], dtypes: [.i8]),
            wscales: weights.tensor("\(name).wscales", shape: [k / group, n], dtypes: [nvfp4 ? .f8e4m3fn : .bf16]),
            wtscale: nvfp4 ? weights.tensor("\(name).wtscale", shape: [1], dtypes: [.bf16]) : nil,
            wcscales: nvfp4 ? weights.tensor("\(name).wcscales", shape: [n], dtypes: [.bf16]) : nil,
            bias: weights.tensor("\(name).bias", shape: [n], dtypes: [.bf16]),
            smooth: weights.tensor("\(name).smooth", shape: [k], dtypes: [.bf16]),
            smoothOrig: weights.tensor("\(name).smooth_orig", shape: [k], dtypes: [.bf16]),
            projDown: weights.tensor("\(name).lora_down", shape: [k, rank], dtypes: [.bf16]),
            projUp: weights.tensor("\(name).lora_up", shape: [n, rank], dtypes: [.bf16]))
        let unsigned = !nvfp4 && (name.hasSuffix(".mlp_fc2") || name.hasSuffix(".mlp_context_fc2"))
        return SVDQW4A4Linear(weights: try SVDQW4A4Weights(name: name, tensors: tensors, layout: .nunchaku, actUnsigned: unsigned))
    }
}

/// A modulation layer whose outputs (natural order: chunk s is columns s·D ..< (s+1)·D) are moved to Nunchaku's
/// interleaved order (column d·S + s).
struct InterleavedOutputs: LinearLayer {
    let base: any LinearLayer
    let modulation: ModulationInterleave

    var name: String { base.name }
    var inFeatures: Int { base.inFeatures }
    var outFeatures: Int { base.outFeatures }

    func forward(_ x: Tensor) throws -> Tensor {
        let natural = try base.forward(x)
        let n = outFeatures, rows = natural.elementCount / n
        let values = try natural.floatValues(context: name)
        var interleaved = [Float](repeating: 0, count: values.count)
        for row in 0..<rows {
            for channel in 0..<n {
                interleaved[row * n + modulation.packedChannel(channel, outputs: n)] = values[row * n + channel]
            }
        }
        return Tensor.rounding(interleaved, shape: natural.shape, to: natural.dtype)
    }
}
