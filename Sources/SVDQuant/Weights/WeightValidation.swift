import NunchakuCore

/// Value checks for weight tensors; every error names the tensor and the first offending element.
enum WeightValidation {
    /// Throws unless every element is finite; `nonZero` also rejects zeros (divisors).
    static func finite(_ tensor: Tensor, _ name: String, nonZero: Bool = false) throws {
        let values = TensorValues.floats(tensor)
        if let index = values.firstIndex(where: { !$0.isFinite || (nonZero && $0 == 0) }) {
            let what = nonZero ? "finite and non-zero" : "finite"
            throw NunchakuError.invalidArgument(
                context: name, reason: "element \(index) is \(values[index]); every value must be \(what)")
        }
    }

    /// Throws unless every float8 e4m3 code is a finite, non-negative scale: the block-scaled MMA reads NVFP4
    /// micro-scales as unsigned ue4m3, so a sign bit or a NaN code would be misread.
    static func microScales(_ tensor: Tensor, _ name: String) throws {
        let codes = TensorValues.bytes(tensor)
        if let index = codes.firstIndex(where: { $0 & 0x80 != 0 || $0 & 0x7F == 0x7F }) {
            throw NunchakuError.invalidArgument(
                context: name,
                reason: "element \(index) is float8 code 0x\(String(codes[index], radix: 16)) (\(TensorValues.float(e4m3fn: codes[index]))); NVFP4 micro-scales must be finite and non-negative")
        }
    }

    /// The single value of a scalar tensor ([] or [1]) of a float dtype.
    static func scalar(_ tensor: Tensor, _ name: String) throws -> Float {
        guard tensor.elementCount == 1, tensor.rank <= 1 else {
            throw NunchakuError.shapeMismatch(context: name, expected: [1], actual: tensor.shape)
        }
        try LayoutCheck.dtype(tensor, [.bf16, .f16, .f32], name)
        return TensorValues.floats(tensor)[0]
    }
}
