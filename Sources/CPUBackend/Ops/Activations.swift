import Foundation
import NunchakuCore

extension CPUOps {
    /// GELU with the tanh approximation (`nn.GELU(approximate="tanh")`):
    /// `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`, evaluated in `Double`.
    public static func geluTanh(_ x: Tensor) throws -> Tensor {
        try elementwise(x, "geluTanh") { value in
            let v = Double(value)
            let inner = (2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)
            return Float(0.5 * v * (1 + tanh(inner)))
        }
    }

    /// SiLU (swish): `x / (1 + e^(−x))`, evaluated in `Double`.
    public static func silu(_ x: Tensor) throws -> Tensor {
        try elementwise(x, "silu") { value in
            let v = Double(value)
            return Float(v / (1 + exp(-v)))
        }
    }

    /// Applies `function` to every element on all cores and rounds the results to the input's dtype.
    private static func elementwise(_ x: Tensor, _ context: String, _ function: (Float) -> Float) throws -> Tensor {
        try OpCheck.activation(x, context)
        let input = try x.floatValues(context: context)
        var output = [Float](repeating: 0, count: input.count)
        input.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { output in
                parallelRows(input.count, minimumRowsPerChunk: 4096) { range in
                    for index in range { output[index] = function(input[index]) }
                }
            }
        }
        return Tensor.rounding(output, shape: x.shape, to: x.dtype)
    }
}
