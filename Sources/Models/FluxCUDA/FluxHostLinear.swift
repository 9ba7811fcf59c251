import CPUBackend
import NunchakuCore
import SVDQuant

/// The host weights of one linear layer, in the form the CUDA model uploads.
enum FluxHostLinear {
    /// `weight` [N, K] and `bias` [N] in any float dtype.
    case dense(weight: Tensor, bias: Tensor)
    /// An SVDQuant W4A4 layer (canonical layout, validated).
    case w4a4(SVDQW4A4Weights)
    /// An AWQ W4A16 layer (canonical layout, validated).
    case awq(AWQW4A16Weights)
    /// The layer's tensors had problems, which the `WeightReader` has recorded: the load fails at `finish()`.
    case unloaded

    /// The layer with its output channels moved from Nunchaku's interleaved adaLN order (stored channel `d·S + s`
    /// holds chunk s, element d; research/nunchaku-internals.md §2.7) to chunk-major order (chunk s in channels
    /// `s·D ..< (s+1)·D`), which the GPU's norm and gated-add kernels read in place. The folded +1 of the scale
    /// chunks moves with its channels.
    /// - Throws: `NunchakuError` naming `name` for a W4A4 layer (never interleaved) or an N that is not a multiple
    ///   of `chunks`.
    func chunkMajor(chunks: Int, name: String) throws -> FluxHostLinear {
        let interleave = try ModulationInterleave(chunks: chunks)
        func rows(_ tensor: Tensor) throws -> Tensor { try Self.gatherRows(tensor, interleave, name: name) }
        switch self {
        case let .dense(weight, bias):
            return .dense(weight: try rows(weight), bias: try rows(bias))
        case let .awq(layer):
            let tensors = layer.canonical
            // Canonical AWQ: codes [N, K/2] (rows are channels), scales and zeros [K/64, N] (columns are channels).
            func columns(_ tensor: Tensor) throws -> Tensor {
                try rows(try tensor.transposed(0, 1).contiguous()).transposed(0, 1).contiguous()
            }
            return .awq(try AWQW4A16Weights(
                name: layer.name,
                tensors: AWQW4A16Tensors(
                    qweight: try rows(tensors.qweight), wscales: try columns(tensors.wscales), wzeros: try columns(tensors.wzeros),
                    bias: try tensors.bias.map(rows)),
                layout: .canonical))
        case .w4a4:
            throw NunchakuError.unsupported(context: name, reason: "W4A4 layers have no interleaved adaLN outputs")
        case .unloaded:
            return .unloaded
        }
    }

    /// Row `r` of the result is row `packedChannel(r)` of `tensor` (rows are whole slices along dimension 0).
    private static func gatherRows(_ tensor: Tensor, _ interleave: ModulationInterleave, name: String) throws -> Tensor {
        let source = tensor.contiguous()
        let rows = source.shape.first ?? 0
        guard rows > 0, rows % interleave.chunks == 0, !source.dtype.isPacked4Bit else {
            throw NunchakuError.invalidArgument(
                context: name, reason: "shape \(source.shape) of \(source.dtype) does not hold \(interleave.chunks) interleaved output chunks")
        }
        let rowBytes = source.byteCount / rows
        var result = Tensor(zeros: source.shape, dtype: source.dtype)
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                for row in 0..<rows {
                    output.baseAddress!.advanced(by: row * rowBytes).copyMemory(
                        from: input.baseAddress!.advanced(by: interleave.packedChannel(row, outputs: rows) * rowBytes), byteCount: rowBytes)
                }
            }
        }
        return result
    }
}

/// Where a model's linear layers come from: a checkpoint read through a factory, or a random-weight generator.
protocol FluxHostLinearSource: Sendable {
    /// The host weights of the layer `spec` describes, in the checkpoint's channel order. Tensors are taken through
    /// `weights`, which records problems.
    func hostLinear(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear
}

/// Linear layers read from a checkpoint. Dense layers (every layer of an unquantized checkpoint, and the unquantized
/// layers of an SVDQuant one) come straight from the reader, 16-bit as stored; quantized layers are built by the CPU
/// `factory` (`SVDQuantLinearFactory` in kernel-exact mode), whose validated weights are then taken over, so the
/// GPU runs exactly the weights the CPU reference runs.
struct FluxCheckpointLinears: FluxHostLinearSource {
    let factory: any LinearLayerFactory

    func hostLinear(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear {
        if spec.quantization == .none || factory is DenseLinearFactory {
            // A missing or mis-shaped tensor comes back as zeros of the right shape, recorded by the reader.
            let floatDTypes: [DType] = [.f32, .bf16, .f16, .f64]
            return .dense(
                weight: weights.tensor("\(spec.name).weight", shape: [spec.outFeatures, spec.inFeatures], dtypes: floatDTypes),
                bias: weights.tensor("\(spec.name).bias", shape: [spec.outFeatures], dtypes: floatDTypes))
        }
        let layer = try factory.makeLinear(spec, computeDType: .bf16, weights: weights)
        switch layer {
        case let layer as SVDQW4A4Linear: return .w4a4(layer.weights)
        case let layer as AWQW4A16Linear: return .awq(layer.weights)
        case is UnloadedLinear: return .unloaded
        default:
            throw NunchakuError.unsupported(
                context: spec.name,
                reason: "the CUDA model runs SVDQuant layers with their kernels only; this layer came out as \(type(of: layer)) (dequantized mode?)")
        }
    }
}
