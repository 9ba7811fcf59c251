import Foundation
import NunchakuCore

/// Which of PyTorch's CPU kernels for float `normal_` to reproduce. They agree to about 1e-6 but not bitwise,
/// and PyTorch picks one by the CPU it runs on.
public enum TorchNormalKernel: String, Sendable, CaseIterable {
    /// The AVX2 kernel: Cephes polynomials for log, sin and cos on 8 lanes. PyTorch runs it on every x86 CPU
    /// with AVX2, AVX-512 ones included (the normal kernel registers no AVX-512 version, so dispatch falls back to
    /// AVX2; checked on an AVX-512 Xeon with PyTorch 2.11).
    case avx2
    /// The portable kernel (libm `logf`, `sinf`, `cosf`): ARM CPUs (Apple silicon), x86 CPUs without AVX2, and
    /// `ATEN_CPU_CAPABILITY=default`.
    case scalar
}

/// How PyTorch computes bf16 / f16 normals from 16 elements on; the algorithm changed between releases.
public enum TorchReducedPrecisionNormal: String, Sendable, CaseIterable {
    /// PyTorch 2.15: 24-bit float uniforms, Box–Muller in float by the `TorchNormalKernel`, one rounding at the end.
    case floatMath
    /// PyTorch 2.11 and earlier: uniforms of the dtype's precision (8 bits for bf16, 11 for f16) and every
    /// operation of the scalar Box–Muller rounded to the dtype (`c10::BFloat16` / `c10::Half` arithmetic).
    case roundedEachOperation
}

extension TorchCPUGenerator {
    /// The mean `randn` adds (`value · std + mean`, or `fma(value, std, mean)`): a no-op except that it turns a −0
    /// (radius 0 times a negative cosine) into +0, which the bits must reproduce.
    private static let mean: Double = 0

    /// `torch.randn(count, generator=self, dtype=dtype)` for a contiguous tensor (PyTorch 2.15 CPU kernel), as
    /// floats holding values of `dtype`.
    ///
    /// From 16 elements on, 16 uniforms at a time become 16 normals by Box–Muller in float (`NormalFill16`; for
    /// f64 in double), the first 8 uniforms giving the radius and the last 8 the angle. A length that is not a
    /// multiple of 16 recomputes the last 16 values from fresh uniforms (for f32/f64 after first drawing
    /// uniforms for the whole tensor). Below 16 elements, each value comes from `normal_distribution<double>`.
    /// `reducedPrecision` picks the PyTorch release's bf16/f16 algorithm (see `TorchReducedPrecisionNormal`).
    /// - Throws: `NunchakuError.dtypeMismatch` for a dtype other than f32, f64, bf16 and f16.
    public mutating func normal(count: Int, dtype: DType = .f32, kernel: TorchNormalKernel = .avx2,
                                reducedPrecision: TorchReducedPrecisionNormal = .floatMath) throws -> [Double] {
        let round: (Double) -> Double
        switch dtype {
        case .f64: round = { $0 }
        case .f32: round = { Double(Float($0)) }
        case .bf16: round = { Double(FloatFormats.float(bf16: FloatFormats.bf16Bits(Float($0)))) }
        case .f16: round = { Double(FloatFormats.float(f16: FloatFormats.f16Bits(Float($0)))) }
        default:
            throw NunchakuError.dtypeMismatch(context: "torch randn", expected: [.f32, .f64, .bf16, .f16], actual: dtype)
        }
        guard count >= 16 else {
            return (0..<count).map { _ in round(standardNormalDouble() * 1 + Self.mean) }
        }
        switch dtype {
        case .f64: return normalFillDouble(count: count)
        case .f32: return normalFillFloat(count: count, kernel: kernel).map(Double.init)
        default:
            switch reducedPrecision {
            case .floatMath:
                return normalFillReduced(count: count, kernel: kernel).map { round(Double($0)) }
            case .roundedEachOperation:
                let roundFloat: (Float) -> Float = { Float(round(Double($0))) }
                return normalFillRoundedEachOperation(count: count, digits: dtype == .bf16 ? 8 : 11, round: roundFloat)
                    .map(Double.init)
            }
        }
    }

    /// The older `normal_fill<BFloat16/Half>`: `digits`-bit uniforms for every element, then Box–Muller with
    /// `round` (to the dtype) after each operation, as `c10`'s reduced-precision operators and `std::log` /
    /// `std::sqrt` / `std::cos` / `std::sin` overloads do; the tail is redone from 16 fresh uniforms.
    private mutating func normalFillRoundedEachOperation(count: Int, digits: Int, round: (Float) -> Float) -> [Float] {
        let mask = UInt32((1 << digits) - 1)
        let scale = 1 / Float(1 << digits)
        var data = (0..<count).map { _ in Float(random32() & mask) * scale }
        func fill(_ start: Int) {
            for lane in 0..<8 {
                let u1 = round(1 - data[start + lane])
                let u2 = data[start + lane + 8]
                let radius = round(round(-2 * round(log(u1))).squareRoot())
                let theta = round(Float(2.0 * Double.pi * Double(u2)))
                data[start + lane] = round(round(radius * round(cos(theta))) + Float(Self.mean))
                data[start + lane + 8] = round(round(radius * round(sin(theta))) + Float(Self.mean))
            }
        }
        for start in stride(from: 0, to: count - 15, by: 16) { fill(start) }
        if count % 16 != 0 {
            for index in (count - 16)..<count { data[index] = Float(random32() & mask) * scale }
            fill(count - 16)
        }
        return data
    }

    /// `normal_fill<float>`: uniforms for every element first, Box–Muller per 16, then the tail redone.
    private mutating func normalFillFloat(count: Int, kernel: TorchNormalKernel) -> [Float] {
        var data = (0..<count).map { _ in uniformFloat() }
        for start in stride(from: 0, to: count - 15, by: 16) {
            Self.boxMuller16(&data, at: start, kernel: kernel)
        }
        if count % 16 != 0 {
            for index in (count - 16)..<count { data[index] = uniformFloat() }
            Self.boxMuller16(&data, at: count - 16, kernel: kernel)
        }
        return data
    }

    /// `normal_fill<BFloat16/Half>`: 16 float uniforms per chunk, Box–Muller in float; the tail chunk takes 16
    /// fresh uniforms (none are drawn for the partial chunk first). The caller rounds to the dtype.
    private mutating func normalFillReduced(count: Int, kernel: TorchNormalKernel) -> [Float] {
        var data = [Float](repeating: 0, count: count)
        var chunk = [Float](repeating: 0, count: 16)
        var starts = Array(stride(from: 0, to: count - 15, by: 16))
        if count % 16 != 0 { starts.append(count - 16) }
        for start in starts {
            for index in 0..<16 { chunk[index] = uniformFloat() }
            Self.boxMuller16(&chunk, at: 0, kernel: kernel)
            data.replaceSubrange(start..<(start + 16), with: chunk)
        }
        return data
    }

    /// `normal_fill<double>`: as for float, in double with libm.
    private mutating func normalFillDouble(count: Int) -> [Double] {
        var data = (0..<count).map { _ in uniformDouble() }
        func fill(_ start: Int) {
            for lane in 0..<8 {
                let u1 = 1 - data[start + lane]
                let u2 = data[start + lane + 8]
                let radius = (-2 * log(u1)).squareRoot()
                let theta = 2.0 * Double.pi * u2
                data[start + lane] = radius * cos(theta) + Self.mean
                data[start + lane + 8] = radius * sin(theta) + Self.mean
            }
        }
        for start in stride(from: 0, to: count - 15, by: 16) { fill(start) }
        if count % 16 != 0 {
            for index in (count - 16)..<count { data[index] = uniformDouble() }
            fill(count - 16)
        }
        return data
    }

    /// `NormalFill16<float>` on `data[start..<start+16]`: the AVX2 specialization or the portable one.
    private static func boxMuller16(_ data: inout [Float], at start: Int, kernel: TorchNormalKernel) {
        for lane in 0..<8 {
            let u1 = 1 - data[start + lane]
            let u2 = data[start + lane + 8]
            switch kernel {
            case .avx2:
                let radius = (-2 * CephesAVXMath.log(u1)).squareRoot()
                let theta = Float(2.0 * Double.pi) * u2
                let (sine, cosine) = CephesAVXMath.sincos(theta)
                data[start + lane] = radius * cosine + Float(Self.mean)
                data[start + lane + 8] = radius * sine + Float(Self.mean)
            case .scalar:
                let radius = (-2 * log(u1)).squareRoot()
                let theta = Float(2.0 * Double.pi * Double(u2))
                data[start + lane] = radius * cos(theta) + Float(Self.mean)
                data[start + lane + 8] = radius * sin(theta) + Float(Self.mean)
            }
        }
    }
}
