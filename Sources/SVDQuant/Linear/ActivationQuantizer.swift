import CPUBackend
import NunchakuCore

/// Per-row, per-group 4-bit activation quantization, step by step as Nunchaku's quantize kernel does it
/// (research/nunchaku-internals.md §3.2; `EpilogueQuantize::apply_quantize`, `quantize_w4a4(_fp4)_from_fpsum_warp`).
///
/// For every element: `t = half(half(x + shift) / smooth)` (the shift only for unsigned INT4). Per row and group:
/// `amax = max |t|` (exact in half); INT4 `scale = amax · fp32(1/7)` (signed) or `· fp32(1/15)` (unsigned), stored as
/// `half(scale)`; NVFP4 `scale = min(amax · fp32(1/6), 448)`, stored as e4m3 (nearest, saturating). Codes are
/// `round(t · rcp(scale))` with the *unrounded* scale: INT4 round-half-even then saturate to [−8, 7] or [0, 15]
/// (NaN → 0), NVFP4 e2m1 round-half-even saturating at ±6 (NaN → code 0).
///
/// Known differences from the GPU (both rare, at most one rounding step on a value sitting on a rounding boundary):
/// the division uses exact IEEE fp32 where the kernel uses `__fdividef` (≤ 2 ulp), and the reciprocal is exact where
/// the kernel uses `rcp.approx.ftz` (≤ 1 ulp); the flush-to-zero of `rcp.approx.ftz` is emulated.
enum ActivationQuantizer {
    /// The constant added to GELU outputs before unsigned INT4 quantization (`SHIFT_GELU`, the GELU lower bound).
    static let unsignedShift: Float = 0.171875

    /// Quantizes `rows` × `k` activations (`x`, values of `type`) with smoothing factors `smooth` ([k], values of
    /// `type`). Returns u8 [rows, k/2] codes and [rows, k/G] scales.
    static func quantize(
        _ x: [Float], rows: Int, k: Int, smooth: [Float], precision: SVDQuantPrecision, unsigned: Bool,
        type: ActivationDType
    ) -> (codes: Tensor, scales: Tensor) {
        let groupSize = precision.groupSize, groups = k / groupSize
        var codes = [UInt8](repeating: 0, count: rows * k / 2)
        var halfScales = [Float](repeating: 0, count: precision == .int4 ? rows * groups : 0)
        var microScales = [UInt8](repeating: 0, count: precision == .nvfp4 ? rows * groups : 0)
        x.withUnsafeBufferPointer { x in
            smooth.withUnsafeBufferPointer { smooth in
                codes.withUnsafeMutableBufferPointer { codes in
                    halfScales.withUnsafeMutableBufferPointer { halfScales in
                        microScales.withUnsafeMutableBufferPointer { microScales in
                            parallelFor(rows) { row in
                                var smoothed = [Float](repeating: 0, count: groupSize)
                                for group in 0..<groups {
                                    let start = group * groupSize
                                    var amax: Float = 0
                                    for i in 0..<groupSize {
                                        var value = x[row * k + start + i]
                                        if unsigned { value = type.round(value + unsignedShift) }
                                        let t = type.round(value / smooth[start + i])
                                        smoothed[i] = t
                                        if t.magnitude > amax { amax = t.magnitude }  // NaN never wins (__hmax)
                                    }
                                    let scaleIndex = row * groups + group
                                    let reciprocal: Float
                                    if precision == .int4 {
                                        let scale = amax * (unsigned ? Float(1) / 15 : Float(1) / 7)
                                        halfScales[scaleIndex] = type.round(scale)
                                        reciprocal = reciprocalApproximate(scale)
                                    } else {
                                        let scale = min(amax * (Float(1) / 6), 448)
                                        microScales[scaleIndex] = FloatFormats.e4m3fnBits(scale, saturating: true)
                                        reciprocal = reciprocalApproximate(scale)
                                    }
                                    for i in stride(from: 0, to: groupSize, by: 2) {
                                        let low = code(smoothed[i] * reciprocal, precision, unsigned)
                                        let high = code(smoothed[i + 1] * reciprocal, precision, unsigned)
                                        codes[(row * k + start + i) / 2] = low | high << 4
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let scales = precision == .int4
            ? TensorValues.tensor(halfScales, shape: [rows, groups], dtype: type.dtype)
            : TensorValues.e4m3Tensor(codes: microScales, shape: [rows, groups])
        return (TensorValues.bytesTensor(codes, shape: [rows, k / 2], dtype: .u8), scales)
    }

    /// The 4-bit code of an already scaled value.
    @inline(__always)
    static func code(_ scaled: Float, _ precision: SVDQuantPrecision, _ unsigned: Bool) -> UInt8 {
        guard precision == .int4 else { return FloatFormats.e2m1Code(scaled) }
        // cvt.rni.s32.f32 (NaN → 0, saturating) then cvt.pack.sat.s4 / .u4.
        guard !scaled.isNaN else { return 0 }
        let clamped = min(max(scaled.rounded(.toNearestOrEven), unsigned ? 0 : -8), unsigned ? 15 : 7)
        return UInt8(bitPattern: Int8(clamped)) & 0xF
    }

    /// `rcp.approx.ftz.f32`: zero or subnormal inputs give infinity, subnormal results flush to zero.
    /// (The hardware result may differ from the correctly rounded reciprocal used here by 1 ulp.)
    @inline(__always)
    static func reciprocalApproximate(_ value: Float) -> Float {
        if value == 0 || value.isSubnormal { return value.sign == .minus ? -.infinity : .infinity }
        let reciprocal = 1 / value
        return reciprocal.isSubnormal ? Float(signOf: reciprocal, magnitudeOf: 0) : reciprocal
    }
}
