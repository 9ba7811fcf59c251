import NunchakuCore

extension CUDAContext {
    /// Scaled dot-product attention `softmax(Q·Kᵀ/√d)·V` per sample and head (tensor cores, float32 online softmax):
    /// the wgmma kernel on Hopper with sm_90a kernels, the FlashAttention-2 style kernel elsewhere
    /// (`AttentionKernel.select`; `kernel` or `NUNCHAKU_ATTENTION_KERNEL` picks one).
    ///
    /// `query` is `[B, Sq, H, d]`, `key` and `value` `[B, Skv, H, d]` (a projection's output viewed as heads), all
    /// bf16 or all f16, `d` 64 or 128, any sequence lengths; `output` is `[B, Sq, H, d]` in the same dtype and not
    /// an input's memory. `keyMask`, when given, is `[B, Skv]` of `u8` or `bool` (0 = the key is padding and ignored);
    /// a query whose keys are all masked gets zeros.
    /// - Throws: `NunchakuError` naming the operand for a wrong dtype, shape or head dimension, or naming the kernel
    ///   when the requested one cannot run on this GPU, before launching.
    public func attention(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, keyMask: DeviceTensor? = nil,
                          kernel requested: AttentionKernel? = nil, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let geometry = try AttentionGeometry(query: query, key: key, value: value, keyMask: keyMask, output: output)
        guard geometry.batch * geometry.queryTokens * geometry.heads > 0 else { return }
        let choice = try attentionKernel(requested, headDim: geometry.headDim)
        let launch = geometry.launch(choice, multiprocessors: device.multiprocessorCount)
        let shape: [KernelArgument] = [output.argument, keyMask.map(\.argument) ?? .pointer(0), .int32(Int32(geometry.queryTokens)),
                                       .int32(Int32(geometry.keyTokens)), .int32(Int32(geometry.heads))]
        let arguments: [KernelArgument]
        switch choice {
        case .fa2:
            arguments = [query.argument, key.argument, value.argument] + shape + [.float(geometry.scaleLog2)]
        case .wgmma:
            // The wgmma kernel reads its inputs through tensor maps (TMA), passed by value, and walks its work units
            // on a persistent grid, so it also needs the batch.
            let maps = try [("query", query), ("key", key), ("value", value)].map { name, tensor in
                try encodeTensorMap(AttentionWGMMALaunch.tensorMapLayout(
                    name: name, address: tensor.buffer.address, shape: tensor.shape, dtype: tensor.dtype)).argument
            }
            arguments = maps + shape + [.int32(Int32(geometry.batch)), .float(geometry.scaleLog2)]
        }
        let kernel = try kernels.kernel(launch.kernelName)
        try kernel.setMaxDynamicSharedMemory(launch.sharedMemoryBytes)
        try kernel.launch(
            grid: launch.grid, block: CUDADim3(launch.threadsPerBlock),
            sharedMemoryBytes: launch.sharedMemoryBytes, stream: stream ?? query.buffer.workStream, arguments: arguments)
    }

    /// `attention(query:key:value:keyMask:kernel:into:stream:)` into a new tensor allocated on the stream.
    public func attention(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, keyMask: DeviceTensor? = nil,
                          kernel: AttentionKernel? = nil, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let output = try DeviceTensor(shape: query.shape, dtype: query.dtype, context: self, stream: stream ?? query.buffer.workStream)
        try attention(query: query, key: key, value: value, keyMask: keyMask, kernel: kernel, into: output, stream: stream)
        return output
    }

    /// The attention kernel launches at head dimension `headDim` use on this GPU (`AttentionKernel.select` with this
    /// context's kernel target, shared-memory limit and `NUNCHAKU_ATTENTION_KERNEL`).
    /// - Throws: what `AttentionKernel.select` throws; `CUDAError` when no kernel target fits this GPU.
    public func attentionKernel(_ requested: AttentionKernel? = nil, headDim: Int) throws -> AttentionKernel {
        try AttentionKernel.select(requested: requested, environment: Environment.value(AttentionKernel.environmentVariable),
                                   target: try kernels.target(), sharedMemoryLimit: device.maxSharedMemoryPerBlockOptin,
                                   headDim: headDim)
    }
}

/// What one attention launch runs: the kernel's name, grid, block size and dynamic shared memory.
public struct AttentionLaunch: Sendable, Equatable {
    public let kernelName: String
    public let grid: CUDADim3
    public let threadsPerBlock: Int
    public let sharedMemoryBytes: Int
}

/// The checked geometry of an attention launch (no GPU needed, so the checks are testable anywhere).
public struct AttentionGeometry: Sendable, Equatable {
    /// The FA2 kernel's queries per block (4 warps of 16) and keys per shared-memory tile.
    public static let queriesPerBlock = 64
    public static let keysPerTile = 64
    public static let threadsPerBlock = 128
    public static let headDimensions = [64, 128]

    public let batch: Int
    public let queryTokens: Int
    public let keyTokens: Int
    public let heads: Int
    public let headDim: Int
    public let dtype: DType

    /// Validates the operands as `CUDAContext.attention` needs them.
    /// - Throws: `NunchakuError` naming the operand and what is wrong.
    public init(query: [Int], key: [Int], value: [Int], dtypes: (query: DType, key: DType, value: DType),
                keyMask: (shape: [Int], dtype: DType)?, output: (shape: [Int], dtype: DType)) throws {
        let op = "attention"
        guard OperandCheck.activationDTypes.contains(dtypes.query) else {
            throw NunchakuError.dtypeMismatch(context: "\(op) query \(query)", expected: OperandCheck.activationDTypes, actual: dtypes.query)
        }
        for (name, dtype) in [("key", dtypes.key), ("value", dtypes.value), ("output", output.dtype)] where dtype != dtypes.query {
            throw NunchakuError.dtypeMismatch(context: "\(op) \(name)", expected: [dtypes.query], actual: dtype)
        }
        guard query.count == 4 else {
            throw NunchakuError.invalidArgument(context: "\(op) query", reason: "expected [B, Sq, H, d], got shape \(query)")
        }
        let (batch, queryTokens, heads, headDim) = (query[0], query[1], query[2], query[3])
        guard Self.headDimensions.contains(headDim) else {
            throw NunchakuError.unsupported(
                context: "\(op) query \(query)", reason: "head dimension \(headDim) has no kernel (supported: 64, 128)")
        }
        guard key.count == 4, key[0] == batch, key[2] == heads, key[3] == headDim else {
            throw NunchakuError.shapeMismatch(context: "\(op) key", expected: [batch, key.count == 4 ? key[1] : 0, heads, headDim], actual: key)
        }
        let keyTokens = key[1]
        guard keyTokens > 0 else {
            throw NunchakuError.invalidArgument(context: "\(op) key \(key)", reason: "needs at least one key")
        }
        guard value == key else { throw NunchakuError.shapeMismatch(context: "\(op) value", expected: key, actual: value) }
        guard output.shape == query else { throw NunchakuError.shapeMismatch(context: "\(op) output", expected: query, actual: output.shape) }
        if let keyMask {
            guard keyMask.dtype == .u8 || keyMask.dtype == .bool else {
                throw NunchakuError.dtypeMismatch(context: "\(op) keyMask", expected: [.u8, .bool], actual: keyMask.dtype)
            }
            guard keyMask.shape == [batch, keyTokens] else {
                throw NunchakuError.shapeMismatch(context: "\(op) keyMask", expected: [batch, keyTokens], actual: keyMask.shape)
            }
        }
        guard queryTokens < Int(Int32.max) - AttentionWGMMALaunch.queriesPerBlock, keyTokens < Int(Int32.max) - Self.keysPerTile,
              batch <= 65535, heads <= 65535,
              AttentionWGMMALaunch.workUnits(batch: batch, queryTokens: queryTokens, heads: heads) <= Int(Int32.max) else {
            throw NunchakuError.invalidArgument(context: "\(op) query \(query), key \(key)", reason: "exceeds the kernel's grid limits")
        }
        self.batch = batch
        self.queryTokens = queryTokens
        self.keyTokens = keyTokens
        self.heads = heads
        self.headDim = headDim
        dtype = dtypes.query
    }

    init(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, keyMask: DeviceTensor?, output: DeviceTensor) throws {
        try self.init(query: query.shape, key: key.shape, value: value.shape, dtypes: (query.dtype, key.dtype, value.dtype),
                      keyMask: keyMask.map { ($0.shape, $0.dtype) }, output: (output.shape, output.dtype))
        for (tensor, name) in [(query, "query"), (key, "key"), (value, "value")] {
            try OperandCheck.distinct(output, tensor, "attention \(name)")
        }
    }

    /// The FA2 kernel: `nunchaku_attention_<dtype>_d<d>`.
    public var kernelName: String { "nunchaku_attention_\(dtype.rawValue)_d\(headDim)" }
    /// FA2 blocks: query blocks × heads × samples.
    public var grid: CUDADim3 { CUDADim3((queryTokens + Self.queriesPerBlock - 1) / Self.queriesPerBlock, heads, batch) }
    /// FA2 shared memory: K and V tiles of 64 keys, two stages each, rows padded by 8 elements.
    public var sharedMemoryBytes: Int { 4 * Self.keysPerTile * (headDim + 8) * 2 }
    /// log₂(e)/√d: the kernel's softmax works in base 2.
    public var scaleLog2: Float { Float(1.4426950408889634 / Double(headDim).squareRoot()) }
    /// The launch of `kernel` for this geometry on a GPU with `multiprocessors` SMs (FA2: the properties above;
    /// wgmma: `AttentionWGMMALaunch`, a persistent grid of at most one block per multiprocessor over the work units).
    public func launch(_ kernel: AttentionKernel, multiprocessors: Int) -> AttentionLaunch {
        switch kernel {
        case .fa2:
            return AttentionLaunch(kernelName: kernelName, grid: grid, threadsPerBlock: Self.threadsPerBlock,
                                   sharedMemoryBytes: sharedMemoryBytes)
        case .wgmma:
            let units = AttentionWGMMALaunch.workUnits(batch: batch, queryTokens: queryTokens, heads: heads)
            return AttentionLaunch(kernelName: "nunchaku_attention_wgmma_\(dtype.rawValue)_d\(headDim)",
                                   grid: CUDADim3(min(units, max(1, multiprocessors))),
                                   threadsPerBlock: AttentionWGMMALaunch.threadsPerBlock,
                                   sharedMemoryBytes: AttentionWGMMALaunch.sharedMemoryBytes(headDim: headDim))
        }
    }

    /// Floating-point operations of one launch (two matrix products).
    public var flops: Double { 4 * Double(batch) * Double(heads) * Double(queryTokens) * Double(keyTokens) * Double(headDim) }
}
