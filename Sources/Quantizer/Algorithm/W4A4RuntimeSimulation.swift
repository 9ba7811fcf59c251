import CPUBackend
import NunchakuCore

/// The runtime's W4A4 forward, simulated in fp32 from the canonical tensors only:
/// `y = Qa((x + shift) / smooth) · (codes · wscales · wtscale)ᵀ + x · projDown · projUpᵀ + bias`
/// (research §3.1, activation fake quantization as in `ActivationQuantizer`).
///
/// Used to measure a quantized layer on held-out inputs and to check that the canonical tensors fit together.
public enum W4A4RuntimeSimulation {
    /// The layer's output for `input` ([rows, K] row-major): [rows, N].
    /// - Throws: `NunchakuError.shapeMismatch` when `input` is not [rows, K].
    public static func output(of layer: QuantizedW4A4Linear, input: [Float], rows: Int) throws -> [Float] {
        let columns = layer.inFeatures
        guard rows >= 0, input.count == rows * columns else {
            throw NunchakuError.shapeMismatch(context: "layer \(layer.name) input", expected: [rows, columns], actual: [input.count])
        }
        var smoothed = input
        for row in 0..<rows {
            for column in 0..<columns {
                let index = row * columns + column
                smoothed[index] = (smoothed[index] + layer.inputShift) / layer.smooth[column]
            }
        }
        let quantizer: ActivationQuantizer = layer.format == .nvfp4 ? .nvfp4 : (layer.activationsUnsigned ? .int4Unsigned : .int4Signed)
        let quantized = try quantizer.fakeQuantize(smoothed, rows: rows, columns: columns)
        var output = Matmul.multiplyTransposed(quantized, layer.dequantizedResidual(), m: rows, n: layer.outFeatures, k: columns)
        if layer.rank > 0 {
            let downTransposed = Matmul.transpose(layer.projDown, rows: columns, columns: layer.rank)
            let projected = Matmul.multiplyTransposed(input, downTransposed, m: rows, n: layer.rank, k: columns)
            let branch = Matmul.multiplyTransposed(projected, layer.projUp, m: rows, n: layer.outFeatures, k: layer.rank)
            for index in output.indices { output[index] += branch[index] }
        }
        for row in 0..<rows {
            for column in 0..<layer.outFeatures { output[row * layer.outFeatures + column] += layer.bias[column] }
        }
        return output
    }
}
