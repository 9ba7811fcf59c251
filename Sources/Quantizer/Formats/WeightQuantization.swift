import CPUBackend
import NunchakuCore

/// A weight matrix after round-to-nearest quantization with symmetric group scales, in the canonical layout.
public struct QuantizedWeight: Sendable {
    public let format: W4A4Format
    /// N (output channels).
    public let rows: Int
    /// K (input channels).
    public let columns: Int
    /// [N, K] codes.
    public let codes: QuantizedCodes
    /// [K/G, N]: INT4 — the bf16-representable group scale; NVFP4 — the fp8 e4m3 micro-scale value.
    public let scales: [Float]
    /// NVFP4's per-tensor scale (`wtscale`, bf16-representable); 1 for INT4.
    public let tensorScale: Float
    /// [N, K] the value each code stands for: `code · scale (· tensorScale)`.
    public let dequantized: [Float]
}

/// Round-to-nearest weight quantization following DeepCompressor's rules (research §9; `quantizer/impl/scale.py`,
/// `simple.py`, `kernel/rtn.py` at v0.1.0):
/// - INT4 (`sint4`, group 64, no zero point): the quantization range is symmetric [-7, 7]; scale = amax/7 in fp32,
///   rounded to bf16 (round to nearest even); a zero scale becomes 1; code = clamp(round_half_even(w / scale), -7, 7).
/// - NVFP4 (`sfp4_e2m1_all`, group 16): per-tensor scale `wtscale` = bf16(amax_tensor / 6 / 448) (1 when the tensor
///   is zero); micro-scale = e4m3(min(amax_group / 6 / wtscale, 448)); code = e2m1(w / (wtscale · micro-scale)),
///   round to nearest even, saturating at ±6. A micro-scale that rounds to 0 gives codes 0 (the runtime multiplies by
///   the stored 0 anyway).
public enum WeightQuantizer {
    /// Quantizes `weight` ([rows, columns] row-major); `columns` must be a multiple of the format's group size.
    /// - Throws: `NunchakuError.shapeMismatch` / `.invalidArgument` when the sizes do not fit.
    public static func quantize(_ weight: [Float], rows: Int, columns: Int, format: W4A4Format) throws -> QuantizedWeight {
        try requireGroupedMatrix(weight.count, rows: rows, columns: columns, groupSize: format.groupSize, "\(format) weight quantizer")
        let groupSize = format.groupSize, groups = columns / groupSize
        let tensorScale = format == .nvfp4 ? nvfp4TensorScale(weight) : 1
        var codes = [UInt8](repeating: 0, count: weight.count)
        var scales = [Float](repeating: 0, count: groups * rows)
        var dequantized = [Float](repeating: 0, count: weight.count)
        weight.withUnsafeBufferPointer { weight in
            codes.withUnsafeMutableBufferPointer { codes in
                scales.withUnsafeMutableBufferPointer { scales in
                    dequantized.withUnsafeMutableBufferPointer { dequantized in
                        parallelFor(rows) { row in
                            for group in 0..<groups {
                                let start = row * columns + group * groupSize
                                let range = start..<(start + groupSize)
                                scales[group * rows + row] = format == .int4
                                    ? quantizeINT4Group(weight, range, codes, dequantized)
                                    : quantizeNVFP4Group(weight, range, tensorScale, codes, dequantized)
                            }
                        }
                    }
                }
            }
        }
        let typedCodes: QuantizedCodes = format == .int4
            ? .int4(codes.map { Int8(bitPattern: $0) }) : .e2m1(codes)
        return QuantizedWeight(
            format: format, rows: rows, columns: columns, codes: typedCodes, scales: scales,
            tensorScale: tensorScale, dequantized: dequantized)
    }

    /// Rounds to the nearest bfloat16 value (ties to even).
    static func bf16(_ value: Float) -> Float {
        FloatFormats.float(bf16: FloatFormats.bf16Bits(value))
    }

    static func nvfp4TensorScale(_ weight: [Float]) -> Float {
        let amax = weight.reduce(Float(0)) { max($0, abs($1)) }
        let scale = bf16(amax / 6 / 448)
        return scale == 0 ? 1 : scale
    }

    /// Writes the codes (as raw Int8 bit patterns) and dequantized values of one group; returns its scale.
    private static func quantizeINT4Group(
        _ weight: UnsafeBufferPointer<Float>, _ range: Range<Int>,
        _ codes: UnsafeMutableBufferPointer<UInt8>, _ dequantized: UnsafeMutableBufferPointer<Float>
    ) -> Float {
        var amax: Float = 0
        for index in range { amax = max(amax, abs(weight[index])) }
        var scale = bf16(amax / 7)
        if scale == 0 { scale = 1 }
        for index in range {
            let code = min(max((weight[index] / scale).rounded(.toNearestOrEven), -7), 7)
            codes[index] = UInt8(bitPattern: Int8(code))
            dequantized[index] = code * scale
        }
        return scale
    }

    private static func quantizeNVFP4Group(
        _ weight: UnsafeBufferPointer<Float>, _ range: Range<Int>, _ tensorScale: Float,
        _ codes: UnsafeMutableBufferPointer<UInt8>, _ dequantized: UnsafeMutableBufferPointer<Float>
    ) -> Float {
        var amax: Float = 0
        for index in range { amax = max(amax, abs(weight[index])) }
        let microScale = FloatFormats.float(e4m3fn: FloatFormats.e4m3fnBits(min(amax / 6 / tensorScale, 448), saturating: true))
        let scale = microScale * tensorScale
        for index in range {
            let code = scale == 0 ? 0 : E2M1Table.code(weight[index] / scale)
            codes[index] = code
            dequantized[index] = E2M1Table.value(code) * scale
        }
        return microScale
    }
}

/// Checks that `count` elements form a [rows, columns] matrix whose columns split into whole groups.
func requireGroupedMatrix(_ count: Int, rows: Int, columns: Int, groupSize: Int, _ context: String) throws {
    guard rows >= 0, columns > 0, count == rows * columns else {
        throw NunchakuError.shapeMismatch(context: context, expected: [rows, columns], actual: [count])
    }
    guard columns % groupSize == 0 else {
        throw NunchakuError.invalidArgument(
            context: context, reason: "K = \(columns) is not a multiple of the group size \(groupSize)")
    }
}
