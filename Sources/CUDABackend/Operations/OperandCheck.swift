import NunchakuCore

/// What the checks look at: a shape and a dtype (a `DeviceTensor`, or a plain description in tests).
protocol ShapedOperand {
    var shape: [Int] { get }
    var dtype: DType { get }
}

extension DeviceTensor: ShapedOperand {}

/// Checks the GPU ops make before a launch. Each error names the op, the operand, its shape or dtype, and what the
/// kernel needs.
enum OperandCheck {
    /// The 16-bit activation formats the op kernels are built for.
    static let activationDTypes: [DType] = [.bf16, .f16]

    /// The kernel name suffix for `dtype` (`bf16` or `f16`).
    /// - Throws: `NunchakuError.dtypeMismatch` for any other dtype.
    static func suffix(_ tensor: some ShapedOperand, _ op: String, _ operand: String) throws -> String {
        guard activationDTypes.contains(tensor.dtype) else {
            throw NunchakuError.dtypeMismatch(context: "\(op) \(operand) \(tensor.shape)", expected: activationDTypes, actual: tensor.dtype)
        }
        return tensor.dtype.rawValue
    }

    /// Throws unless `tensor` has `dtype`.
    static func dtype(_ tensor: some ShapedOperand, _ dtype: DType, _ op: String, _ operand: String) throws {
        guard tensor.dtype == dtype else {
            throw NunchakuError.dtypeMismatch(context: "\(op) \(operand) \(tensor.shape)", expected: [dtype], actual: tensor.dtype)
        }
    }

    /// Throws unless `tensor` has exactly `shape`.
    static func shape(_ tensor: some ShapedOperand, _ shape: [Int], _ op: String, _ operand: String) throws {
        guard tensor.shape == shape else {
            throw NunchakuError.shapeMismatch(context: "\(op) \(operand)", expected: shape, actual: tensor.shape)
        }
    }

    /// Throws unless `tensor` has `rank` dimensions.
    static func rank(_ tensor: some ShapedOperand, _ rank: Int, _ op: String, _ operand: String) throws {
        guard tensor.shape.count == rank else {
            throw NunchakuError.invalidArgument(context: "\(op) \(operand)", reason: "expected a rank-\(rank) tensor, got shape \(tensor.shape)")
        }
    }

    /// The last dimension of `tensor`, which must be positive and a multiple of `multiple` (the kernel's vector width).
    static func width(_ tensor: some ShapedOperand, multipleOf multiple: Int, _ op: String, _ operand: String) throws -> Int {
        guard let width = tensor.shape.last, width > 0, width % multiple == 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(op) \(operand) \(tensor.shape)",
                reason: "the last dimension must be a positive multiple of \(multiple) for the kernel's vector accesses")
        }
        return width
    }

    /// Throws when `output` shares memory with `input` (the kernel reads its input while writing elsewhere).
    static func distinct(_ output: DeviceTensor, _ input: DeviceTensor, _ op: String) throws {
        guard output.buffer !== input.buffer || output.byteCount == 0 else {
            throw NunchakuError.invalidArgument(context: op, reason: "the output must not be the input's memory")
        }
    }

    /// Throws unless `count` fits the kernel's 32-bit `int` parameter.
    static func int32(_ count: Int, _ op: String, _ what: String) throws -> Int32 {
        guard let value = Int32(exactly: count) else {
            throw NunchakuError.invalidArgument(context: op, reason: "\(what) \(count) exceeds the kernel's 32-bit range")
        }
        return value
    }
}

extension CUDAContext {
    /// Grid and block for a grid-stride kernel over `items` work items: 256 threads, at most 16 blocks per SM.
    func gridStrideLaunch(items: Int) -> (grid: CUDADim3, block: CUDADim3) {
        let threads = 256
        let blocks = max(1, min((items + threads - 1) / threads, device.multiprocessorCount * 16))
        return (CUDADim3(blocks), CUDADim3(threads))
    }
}

/// A per-sample vector `[B, D]` stored as chunk `chunk` of a modulation table `[B, C·D]`: the output of an adaLN
/// linear holds shift, scale and gate vectors side by side (FLUX: `emb.chunk(6, dim=1)`). A plain `[B, D]` tensor is
/// chunk 0 of itself.
public struct ModulationChunk: Sendable {
    public let table: DeviceTensor
    public let chunk: Int
    /// Gated epilogue vectors made ahead from this gate for fast W4A4 layers (`CUDASVDQW4A4FastLinear.prepareGates`);
    /// a layer without an entry makes its own.
    public var prepared: W4A4FastPreparedGates?

    public init(_ table: DeviceTensor, chunk: Int = 0) {
        self.table = table
        self.chunk = chunk
    }

    /// The chunk's first element's address and the distance in elements between samples, after checking that the
    /// table is `[batch, k·width]` in `dtype` with room for the chunk.
    func resolve(batch: Int, width: Int, dtype: DType, _ op: String, _ operand: String) throws -> (address: CUdeviceptr, stride: Int) {
        let (offset, stride) = try Self.layout(table: table, chunk: chunk, batch: batch, width: width, dtype: dtype, op, operand)
        return (table.buffer.address + UInt64(offset), stride)
    }

    /// The chunk's byte offset in the table and the table's row length in elements.
    /// - Throws: `NunchakuError` naming `op` and `operand` unless the table is `[batch, k·width]` in `dtype` and holds
    ///   chunk `chunk`.
    static func layout(table: some ShapedOperand, chunk: Int, batch: Int, width: Int, dtype: DType, _ op: String,
                       _ operand: String) throws -> (byteOffset: Int, stride: Int) {
        try OperandCheck.dtype(table, dtype, op, operand)
        guard table.shape.count == 2, table.shape[0] == batch, width > 0, table.shape[1] % width == 0,
              chunk >= 0, (chunk + 1) * width <= table.shape[1] else {
            throw NunchakuError.invalidArgument(
                context: "\(op) \(operand)",
                reason: "chunk \(chunk) of width \(width) does not fit a modulation table \(table.shape) (needs [\(batch), k·\(width)])")
        }
        return (dtype.byteCount(forElements: chunk * width), table.shape[1])
    }
}
