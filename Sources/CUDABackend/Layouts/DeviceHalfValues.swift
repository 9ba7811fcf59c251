import NunchakuCore
import SVDQuant

/// Host-side preparation of 16-bit tensors for the W4A4 and AWQ kernels, which compute in the activation dtype.
enum DeviceHalfValues {
    /// The elements of a bf16/f16/f32 tensor as bits of `type`: unchanged when the tensor already has that dtype,
    /// otherwise rounded with saturation at the type's range (like the CPU reference's `roundSaturating`, Nunchaku's
    /// `convert_fp16`).
    static func bits(_ tensor: Tensor, as type: ActivationDType) -> [UInt16] {
        if tensor.dtype == type.dtype { return tensor.contiguous().withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) } }
        return tensor.floats().map { type.bits(type.roundSaturating($0)) }
    }

    /// A host tensor of `type` holding `bits`.
    static func tensor(_ bits: [UInt16], shape: [Int], type: ActivationDType) throws -> Tensor {
        try bits.withUnsafeBytes { try Tensor(shape: shape, dtype: type.dtype, bytes: $0) }
    }

    /// [rows, columns] row-major values transposed to [columns, rows].
    static func transposed<Element>(_ values: [Element], rows: Int, columns: Int) -> [Element] {
        guard let first = values.first else { return [] }
        var result = [Element](repeating: first, count: values.count)
        for row in 0..<rows {
            for column in 0..<columns { result[column * rows + row] = values[row * columns + column] }
        }
        return result
    }
}
