import NunchakuCore

/// Checks of device operands made before a W4A4 or AWQ kernel is launched; each error names the op and the shapes.
enum W4A4OperandCheck {
    /// The kernels read 16-byte vectors: every buffer they touch must start 16-byte aligned.
    static let alignment: UInt64 = 16

    /// `tensor` must have `dtype`, hold at least its elements and start 16-byte aligned.
    static func tensor(_ tensor: DeviceTensor, dtype: DType, _ op: String, _ role: String) throws {
        guard tensor.dtype == dtype else {
            throw NunchakuError.dtypeMismatch(context: "\(op) \(role) \(tensor.shape)", expected: [dtype], actual: tensor.dtype)
        }
        guard tensor.buffer.byteCount >= tensor.byteCount else {
            throw NunchakuError.invalidArgument(
                context: "\(op) \(role)", reason: "buffer of \(tensor.buffer.byteCount) bytes is smaller than shape \(tensor.shape) of \(dtype)")
        }
        guard tensor.buffer.address % alignment == 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(op) \(role) \(tensor.shape)", reason: "device address 0x\(String(tensor.buffer.address, radix: 16)) is not 16-byte aligned")
        }
    }

    /// The rows of activations [..., K]: the product of the leading dimensions (at least one row).
    static func rows(_ x: DeviceTensor, inFeatures: Int, _ op: String) throws -> Int {
        guard x.shape.count >= 1, x.shape.last == inFeatures, x.elementCount > 0 else {
            throw NunchakuError.invalidArgument(context: "\(op) input", reason: "expected a non-empty shape [..., \(inFeatures)], got \(x.shape)")
        }
        guard x.elementCount / inFeatures <= Int(Int32.max) else {
            throw NunchakuError.unsupported(context: "\(op) input \(x.shape)", reason: "more than \(Int32.max) rows")
        }
        return x.elementCount / inFeatures
    }
}
