import CUDABackend
import Models
import NunchakuCore

/// A text-encoder linear on the GPU, possibly several checkpoint linears of one input width fused along the output
/// (q ‖ k ‖ v, wi_0 ‖ wi_1) into one GEMM: `y = x·Wᵀ (+ b)` with bf16 weights and float32 accumulation (cuBLASLt
/// or the own kernel through `CUDAGEMM`), rounded once.
///
/// A part stored as a `TinyChatW4Layer` (Nunchaku's 4-bit T5) stays 4-bit on the GPU and is expanded to a bf16
/// scratch weight for each call (`dequantizeTinyChatW4`), which the pool frees once the GEMM has read it; fused
/// parts must then all be 4-bit.
struct CUDAEncoderLinear: Sendable {
    enum Storage: Sendable {
        case dense(weight: DeviceTensor)
        case tinyChat(qweight: DeviceTensor, scales: DeviceTensor, zeros: DeviceTensor, groupSize: Int)
    }

    let name: String
    let inFeatures: Int
    let outFeatures: Int
    let storage: Storage
    let bias: DeviceTensor?

    /// Reads the parts `names` (output widths `outputs`, input width `inFeatures`) of `weights` through `reader` (which
    /// records what was taken and every problem) and uploads them
    /// fused. A part with `<name>.qweight` in the checkpoint is read as a TinyChat 4-bit layer, else `<name>.weight`.
    init(_ names: [String], outputs: [Int], inFeatures: Int, hasBias: Bool, weights: any TensorProvider, reader: WeightReader,
         context: CUDAContext) throws {
        let quantized = names.map { reader.contains("\($0).qweight") }
        name = names.joined(separator: " ‖ ")
        self.inFeatures = inFeatures
        outFeatures = outputs.reduce(0, +)
        if quantized.allSatisfy({ $0 }) {
            let layers = try zip(names, outputs).map { part, outputs in
                let layer = try TinyChatW4Layer(name: part, provider: weights, groupSize: T5AWQCheckpoint.groupSize)
                guard layer.outFeatures == outputs, layer.inFeatures == inFeatures else {
                    throw NunchakuError.shapeMismatch(context: "\(part).qweight", expected: [outputs / 4, inFeatures], actual: layer.qweight.shape)
                }
                layer.tensorNames.forEach { _ = reader.claim($0) }
                return layer
            }
            storage = try Self.uploadTinyChat(layers, context: context)
            bias = try layers.allSatisfy({ $0.bias != nil })
                ? Self.uploadRows(layers.map { $0.bias!.converted(to: .bf16) }, context: context) : nil
        } else if quantized.contains(true) {
            throw NunchakuError.unsupported(context: name, reason: "mixes 4-bit and dense parts; the fused GPU linear needs one kind")
        } else {
            let weights = zip(names, outputs).map { part, outputs in
                reader.tensor("\(part).weight", shape: [outputs, inFeatures], dtypes: parameterDTypes).converted(to: .bf16)
            }
            storage = .dense(weight: try Self.uploadRows(weights, context: context))
            bias = hasBias ? try Self.uploadRows(names.enumerated().map { index, part in
                reader.tensor("\(part).bias", shape: [outputs[index]], dtypes: parameterDTypes).converted(to: .bf16)
            }, context: context) : nil
        }
    }

    /// `x` `[..., K]` bf16 → `[..., N]` bf16.
    func callAsFunction(_ x: DeviceTensor, gemm: CUDAGEMM) throws -> DeviceTensor {
        switch storage {
        case let .dense(weight):
            return try gemm.linear(x, weight: weight, bias: bias)
        case let .tinyChat(qweight, scales, zeros, groupSize):
            let weight = try DeviceTensor(shape: [outFeatures, inFeatures], dtype: .bf16, context: gemm.context)
            try gemm.context.dequantizeTinyChatW4(qweight: qweight, scales: scales, zeros: zeros, groupSize: groupSize, into: weight)
            return try gemm.linear(x, weight: weight, bias: bias)
        }
    }

    /// Bytes the layer holds on the GPU.
    var deviceBytes: Int {
        let own: Int
        switch storage {
        case let .dense(weight): own = weight.byteCount
        case let .tinyChat(qweight, scales, zeros, _): own = qweight.byteCount + scales.byteCount + zeros.byteCount
        }
        return own + (bias?.byteCount ?? 0)
    }

    /// Tensors of one dtype stacked along their first dimension, uploaded.
    static func uploadRows(_ parts: [Tensor], context: CUDAContext) throws -> DeviceTensor {
        guard parts.count > 1 else { return try DeviceTensor(uploading: parts[0].contiguous(), context: context) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(parts.reduce(0) { $0 + $1.byteCount })
        for part in parts { part.contiguous().withUnsafeBytes { bytes.append(contentsOf: $0) } }
        let shape = [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst()
        return try DeviceTensor(uploading: Tensor(shape: shape, dtype: parts[0].dtype, bytes: bytes), context: context)
    }

    /// TinyChat layers fused along N: `qweight` rows stacked (four outputs per row), scales and zeros side by side.
    static func uploadTinyChat(_ layers: [TinyChatW4Layer], context: CUDAContext) throws -> Storage {
        let groups = layers[0].storedGroups, total = layers.reduce(0) { $0 + $1.outFeatures }
        var scales = [Float](repeating: 0, count: groups * total), zeros = scales
        var column = 0
        for layer in layers {
            for group in 0..<groups {
                for n in 0..<layer.outFeatures {
                    scales[group * total + column + n] = layer.scales[group * layer.outFeatures + n]
                    zeros[group * total + column + n] = layer.zeros[group * layer.outFeatures + n]
                }
            }
            column += layer.outFeatures
        }
        return .tinyChat(
            qweight: try uploadRows(layers.map(\.qweight), context: context),
            scales: try DeviceTensor(uploading: Tensor(scales, shape: [groups, total]), context: context),
            zeros: try DeviceTensor(uploading: Tensor(zeros, shape: [groups, total]), context: context),
            groupSize: layers[0].groupSize)
    }
}
