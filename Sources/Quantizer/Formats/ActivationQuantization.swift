import CPUBackend
import NunchakuCore

/// Fake quantization of activations as the W4A4 runtime does it (research §3.2), simulated in fp32:
/// per row, per group of K, a dynamic scale from the group's absolute maximum.
///
/// Differences from the kernel, all below the 4-bit rounding error: the scale is not rounded to half for the
/// dequantization, the input is not rounded to half after smoothing, and division replaces `rcp.approx`.
public enum ActivationQuantizer: Sendable, Equatable {
    /// INT4 signed, group 64: scale = amax/7, codes clamp(round(x/scale), -8, 7).
    case int4Signed
    /// INT4 unsigned (shifted post-GELU inputs), group 64: scale = amax/15, codes clamp(round(x/scale), 0, 15).
    case int4Unsigned
    /// NVFP4, group 16: scale = min(amax/6, 448) stored as e4m3 (saturating); codes e2m1(x/scale);
    /// dequantized with the stored e4m3 scale.
    case nvfp4

    /// The quantizer the runtime uses for a layer of `format` whose input is of `kind`.
    public init(format: W4A4Format, inputKind: LinearInputKind) {
        switch (format, inputKind) {
        case (.int4, .general): self = .int4Signed
        case (.int4, .postGELU): self = .int4Unsigned
        case (.nvfp4, _): self = .nvfp4
        }
    }

    public var groupSize: Int { self == .nvfp4 ? 16 : 64 }

    /// The dequantized values of `x` ([rows, columns] row-major; columns a multiple of the group size).
    /// - Throws: `NunchakuError.shapeMismatch` / `.invalidArgument` when the sizes do not fit.
    public func fakeQuantize(_ x: [Float], rows: Int, columns: Int) throws -> [Float] {
        try requireGroupedMatrix(x.count, rows: rows, columns: columns, groupSize: groupSize, "activation quantizer")
        var result = [Float](repeating: 0, count: x.count)
        let groupSize = groupSize, groups = columns / groupSize
        x.withUnsafeBufferPointer { x in
            result.withUnsafeMutableBufferPointer { result in
                parallelFor(rows) { row in
                    for group in 0..<groups {
                        let start = row * columns + group * groupSize
                        quantizeGroup(x, result, start..<(start + groupSize))
                    }
                }
            }
        }
        return result
    }

    private func quantizeGroup(_ x: UnsafeBufferPointer<Float>, _ result: UnsafeMutableBufferPointer<Float>, _ range: Range<Int>) {
        var amax: Float = 0
        for index in range { amax = max(amax, abs(x[index])) }
        guard amax > 0 else {
            for index in range { result[index] = 0 }
            return
        }
        switch self {
        case .int4Signed, .int4Unsigned:
            let (levels, lowest, highest): (Float, Float, Float) = self == .int4Signed ? (7, -8, 7) : (15, 0, 15)
            let scale = amax * (1 / levels)
            for index in range {
                result[index] = min(max((x[index] / scale).rounded(.toNearestOrEven), lowest), highest) * scale
            }
        case .nvfp4:
            let scale = min(amax * (1 / 6), 448)
            let storedScale = FloatFormats.float(e4m3fn: FloatFormats.e4m3fnBits(scale, saturating: true))
            for index in range {
                result[index] = E2M1Table.value(E2M1Table.code(x[index] / scale)) * storedScale
            }
        }
    }
}
