import CPUBackend
import NunchakuCore
import SVDQuant

/// Turns quantized layers (canonical, fp32) into the tensors of a Nunchaku checkpoint: C++ parameter names
/// (research/nunchaku-internals.md §1.2–1.3), Nunchaku's packed layouts (done by SVDQuant's `SVDQW4A4Weights` and
/// `AWQW4A16Weights`), every 16-bit tensor in bf16.
public enum NunchakuLayerPacking {
    /// The tensors of one W4A4 layer, keyed by parameter name: `qweight` (i8 [N, K/2]), `wscales` (INT4 bf16
    /// [K/64, N]; NVFP4 f8e4m3fn [K/16, N]), `bias` [N], `smooth` and `smooth_orig` [K] (the same vector: nothing is
    /// fused into a previous layer), `lora_down` [K, R], `lora_up` [N, R], and for NVFP4 `wtscale` [1] and
    /// `wcscales` [N] (ones: the quantizer uses one per-tensor scale). Low-rank factors and bias are rounded to
    /// bf16 here; codes and scales are already exact.
    public static func w4a4(_ layer: QuantizedW4A4Linear) throws -> [String: Tensor] {
        let n = layer.outFeatures, k = layer.inFeatures, groups = k / layer.format.groupSize
        let wscales: Tensor
        switch layer.format {
        case .int4: wscales = bf16(layer.wscales, [groups, n])
        case .nvfp4:
            wscales = e4m3(layer.wscales, shape: [groups, n])
        }
        let smooth = bf16(layer.smooth, [k])
        let canonical = SVDQW4A4Tensors(
            qweight: packNibbles(nibbles(layer.codes), rows: n, columns: k),
            wscales: wscales,
            wtscale: layer.format == .nvfp4 ? bf16([layer.wtscale], [1]) : nil,
            wcscales: layer.format == .nvfp4 ? bf16([Float](repeating: 1, count: n), [n]) : nil,
            bias: bf16(layer.bias, [n]), smooth: smooth, smoothOrig: smooth,
            projDown: bf16(layer.projDown, [k, layer.rank]), projUp: bf16(layer.projUp, [n, layer.rank]))
        let weights = try SVDQW4A4Weights(
            name: layer.name, tensors: canonical, layout: .canonical(vectorOrder: .natural), actUnsigned: layer.activationsUnsigned)
        let packed = try weights.tensors(layout: .nunchaku)
        var tensors: [String: Tensor] = [
            "qweight": packed.qweight, "wscales": packed.wscales, "smooth": packed.smooth,
            "lora_down": packed.projDown, "lora_up": packed.projUp,
        ]
        tensors["bias"] = packed.bias
        tensors["smooth_orig"] = packed.smoothOrig
        tensors["wtscale"] = packed.wtscale
        tensors["wcscales"] = packed.wcscales
        return tensors
    }

    /// The tensors of one adaLN modulation layer with `chunks` outputs (6 for `norm1*`, 3 for single `norm.linear`):
    /// `qweight` (i32 [N/4, K/2]), `wscales`, `wzeros` (bf16 [K/64, N]) and `bias` (bf16 [N]), output channels
    /// interleaved, and 1 added (in bf16, as deepcompressor does) to the bias of the scale chunks so that the runtime
    /// computes `x·scale + shift` (research §2.7).
    public static func awqModulation(_ layer: QuantizedAWQLinear, chunks: Int) throws -> [String: Tensor] {
        let n = layer.outFeatures, k = layer.inFeatures, groups = k / AWQQuantizer.groupSize
        let modulation = try ModulationInterleave(chunks: chunks)
        guard n % chunks == 0 else {
            throw NunchakuError.invalidArgument(context: layer.name, reason: "N = \(n) is not a multiple of \(chunks) chunks")
        }
        var bias = layer.bias.map(WeightQuantizer.bf16)
        let width = n / chunks
        for chunk in modulation.scaleChunks {
            for d in 0..<width { bias[chunk * width + d] = WeightQuantizer.bf16(bias[chunk * width + d] + 1) }
        }
        let canonical = AWQW4A16Tensors(
            qweight: packNibbles(layer.codes, rows: n, columns: k),
            wscales: bf16(layer.scales, [groups, n]), wzeros: bf16(layer.zeros, [groups, n]), bias: bf16(bias, [n]))
        let weights = try AWQW4A16Weights(name: layer.name, tensors: canonical, layout: .canonical, modulation: modulation)
        let packed = try weights.tensors(layout: .nunchaku)
        var tensors = ["qweight": packed.qweight, "wscales": packed.wscales, "wzeros": packed.wzeros]
        tensors["bias"] = packed.bias
        return tensors
    }

    /// The 4-bit codes as nibbles 0…15 (INT4 in two's complement).
    static func nibbles(_ codes: QuantizedCodes) -> [UInt8] {
        switch codes {
        case let .int4(values): values.map { UInt8(bitPattern: $0) & 0xF }
        case let .e2m1(values): values.map { $0 & 0xF }
        }
    }

    /// [rows, columns/2] u8 holding nibble (r, c) in the low half of byte (r, c/2) for even c, the high half for odd c.
    static func packNibbles(_ nibbles: [UInt8], rows: Int, columns: Int) -> Tensor {
        var tensor = Tensor(zeros: [rows, columns / 2], dtype: .u8)
        tensor.withUnsafeMutableBytes { bytes in
            for index in bytes.indices { bytes[index] = nibbles[2 * index] | nibbles[2 * index + 1] << 4 }
        }
        return tensor
    }

    /// A float8 e4m3 tensor of `values` (exactly representable ones: the quantizer's micro-scales).
    static func e4m3(_ values: [Float], shape: [Int]) -> Tensor {
        var tensor = Tensor(zeros: shape, dtype: .f8e4m3fn)
        tensor.withUnsafeMutableBytes { bytes in
            for index in values.indices { bytes[index] = FloatFormats.e4m3fnBits(values[index], saturating: true) }
        }
        return tensor
    }

    private static func bf16(_ values: [Float], _ shape: [Int]) -> Tensor {
        Tensor.rounding(values, shape: shape, to: .bf16)
    }
}
