import CUDABackend
import NunchakuCore
import SVDQuant

/// A W4A4 layer shape for the self-test: FLUX's (K, N) pairs, INT4 (signed, or unsigned for the layers fed by GELU)
/// or NVFP4 (with per-channel `wcscales` and a per-tensor `wtscale` ≠ 1, as Nunchaku's fused QKV layers have).
struct W4A4SelfTestLayer: Sendable {
    let precision: SVDQuantPrecision
    let inFeatures: Int
    let outFeatures: Int
    let unsigned: Bool
    var rank = 32

    static func int4(_ k: Int, _ n: Int, unsigned: Bool = false, rank: Int = 32) -> W4A4SelfTestLayer {
        W4A4SelfTestLayer(precision: .int4, inFeatures: k, outFeatures: n, unsigned: unsigned, rank: rank)
    }

    static func nvfp4(_ k: Int, _ n: Int) -> W4A4SelfTestLayer {
        W4A4SelfTestLayer(precision: .nvfp4, inFeatures: k, outFeatures: n, unsigned: false)
    }

    /// `M=… N=… K=…` plus the layer kind.
    func label(rows: Int) -> String {
        "M=\(rows) N=\(outFeatures) K=\(inFeatures)" + (unsigned ? " unsigned" : "")
    }

    /// Activations like the layer's real input: GELU outputs (≥ −0.171875) for unsigned layers, else symmetric.
    var inputRange: ClosedRange<Float> { unsigned ? -0.171875...1.5 : -1...1 }
}

/// Random weights and helpers shared by the W4A4 and AWQ cases.
enum W4A4SelfTestData {
    /// Random weights of `layer` (bf16 like FLUX checkpoints), canonical layout. Magnitudes keep outputs near 1:
    /// INT4 group scales 0.005–0.015, NVFP4 micro-scales 2⁻⁶–0.12 (e4m3 codes 0x08–0x1F) with wtscale 0.25 and
    /// wcscales 0.5–1.5, smoothing factors 0.5–2, low-rank projections small.
    static func weights(_ layer: W4A4SelfTestLayer, _ random: inout SelfTestRandom) throws -> SVDQW4A4Weights {
        let n = layer.outFeatures, k = layer.inFeatures, r = layer.rank
        let nvfp4 = layer.precision == .nvfp4
        let scales: Tensor
        if nvfp4 {
            let codes = (0..<(k / 16 * n)).map { _ in UInt8(8 + random.next() % 24) }
            scales = try Tensor(shape: [k / 16, n], dtype: .f8e4m3fn, bytes: codes)
        } else {
            scales = uniform([k / 64, n], 0.005...0.015, &random)
        }
        let tensors = SVDQW4A4Tensors(
            qweight: try Tensor(shape: [n, k / 2], dtype: .u8, bytes: randomBytes(n * k / 2, &random)),
            wscales: scales,
            wtscale: nvfp4 ? Tensor([0.25], shape: [1], dtype: .bf16) : nil,
            wcscales: nvfp4 ? uniform([n], 0.5...1.5, &random) : nil,
            bias: uniform([n], -0.5...0.5, &random),
            smooth: uniform([k], 0.5...2, &random),
            projDown: uniform([k, r], -0.02...0.02, &random),
            projUp: uniform([n, r], -0.1...0.1, &random))
        return try SVDQW4A4Weights(name: "selftest", tensors: tensors, layout: .canonical(vectorOrder: .natural),
                                   actUnsigned: layer.unsigned)
    }

    /// A bf16 tensor of uniform values in `range` (never zero).
    static func uniform(_ shape: [Int], _ range: ClosedRange<Float>, _ random: inout SelfTestRandom) -> Tensor {
        RandomTensor(shape: shape, dtype: .bf16, range: range, seed: random.next()).tensor
    }

    /// `count` random bytes.
    static func randomBytes(_ count: Int, _ random: inout SelfTestRandom) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var word: UInt64 = 0
        for index in 0..<count {
            if index % 8 == 0 { word = random.next() }
            bytes[index] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index % 8)))
        }
        return bytes
    }

    /// Rows `rows` of a 2-D tensor, in that order (a contiguous copy).
    static func rows(_ tensor: Tensor, _ rows: [Int]) throws -> Tensor {
        let width = tensor.byteCount / tensor.shape[0]
        let bytes = tensor.contiguous().withUnsafeBytes { source in
            rows.flatMap { row in source[(row * width)..<((row + 1) * width)] }
        }
        return try Tensor(shape: [rows.count] + tensor.shape.dropFirst(), dtype: tensor.dtype, bytes: bytes)
    }

    /// Rows `rows` of quantized activations.
    static func rows(_ activations: QuantizedActivations, _ rows: [Int]) throws -> QuantizedActivations {
        try QuantizedActivations(
            precision: activations.precision, activationDType: activations.activationDType, unsigned: activations.unsigned,
            codes: try self.rows(activations.codes, rows), scales: try self.rows(activations.scales, rows),
            lowRank: try self.rows(activations.lowRank, rows))
    }

    /// Every activation as `code value × scale` ([M, K] floats): what the GEMM sees of the quantize step.
    static func dequantized(_ activations: QuantizedActivations) -> [Float] {
        let k = activations.inFeatures, groupSize = activations.precision.groupSize
        let scales = activations.scales.floats()
        return activations.codes.withUnsafeBytes { codes in
            (0..<(activations.rows * k)).map { index in
                let code = (codes[index / 2] >> (4 * UInt8(index % 2))) & 0xF
                let value: Float
                switch activations.precision {
                case .int4: value = activations.unsigned ? Float(code) : Float(Int(code) - (code >= 8 ? 16 : 0))
                case .nvfp4: value = FloatFormats.float(e2m1: code)
                }
                return value * scales[(index / k) * (k / groupSize) + (index % k) / groupSize]
            }
        }
    }
}
