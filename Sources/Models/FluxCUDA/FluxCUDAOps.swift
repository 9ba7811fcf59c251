import CUDABackend
import NunchakuCore

/// The GPU operations one forward pass uses, on the context's current stream (the default stream, or the side
/// stream inside `concurrently`), each allocating its output from the memory pool; a result's memory returns to the
/// pool (in stream order) as soon as its last `DeviceTensor` goes.
///
/// Besides the kernels' own ops it has the few the FLUX graph needs that are compositions of them: a plain add
/// (a gated add whose gate is all ones), and concatenating or splitting along the last dimension (token copies on a
/// view with one row per token).
struct FluxCUDAOps {
    let context: CUDAContext
    private(set) var gemm: CUDAGEMM
    /// bf16 ones `[B, D]`: the gate of `add`.
    let ones: DeviceTensor
    /// Where `concurrently` runs its side work (nil: in line, before the main work).
    private(set) var sideStream: FluxCUDASideStream?

    /// Ops for a forward of batch `batch` and width `width`.
    init(context: CUDAContext, gemm: CUDAGEMM, batch: Int, width: Int, sideStream: FluxCUDASideStream? = nil) throws {
        self.context = context
        self.gemm = gemm
        self.sideStream = sideStream
        // Filled on the device (bf16 1.0 = 0x3F80), not uploaded: a forward queues no host copy, so it can be
        // captured into a CUDA graph.
        ones = try DeviceTensor(shape: [batch, width], dtype: .bf16, context: context)
        try context.currentStream.fill(ones.buffer, withHalfWords: 0x3F80)
    }

    func linear(_ layer: FluxCUDALinear, _ x: DeviceTensor) throws -> DeviceTensor {
        try layer(x, gemm: gemm)
    }

    /// `layer(input)`: 16-bit values, or activations quantized for the layer's fast W4A4 activation pass.
    func linear(_ layer: FluxCUDALinear, _ input: W4A4FastInput) throws -> DeviceTensor {
        try layer(input, gemm: gemm)
    }

    /// `GELU(layer(x))` (tanh form): in the layer's GEMM epilogue where it has one (fast W4A4), else a separate pass.
    func linearGELU(_ layer: FluxCUDALinear, _ x: W4A4FastInput) throws -> DeviceTensor {
        if let fused = try layer.fusedGELU(x) { return fused }
        let y = try linear(layer, x)
        try apply(.geluTanh, y)
        return y
    }

    /// `x ← x + y` for `[B, S, D]` tensors (`[B, D]` ones are viewed as `[B, 1, D]`), computed in float32 and rounded
    /// once, like `CPUOps.add`.
    func add(_ y: DeviceTensor, into x: DeviceTensor) throws {
        let (x3, y3) = (try Self.rank3(x), try Self.rank3(y))
        try context.gatedAdd(residual: x3, gate: ModulationChunk(ones), update: y3, into: x3)
    }

    /// `x ← x + gate·layer(y)`: in the layer's GEMM epilogue where it has one (fast W4A4, batch of one), else the
    /// layer's output and a gated add.
    func linearGatedAdd(_ layer: FluxCUDALinear, _ y: W4A4FastInput, gate: ModulationChunk, into x: DeviceTensor) throws {
        if try layer.gatedAccumulate(y, gate: gate, into: x) { return }
        try gatedAdd(try linear(layer, y), gate: gate, into: x)
    }

    /// `uses`' gates, each carrying the gated epilogue vectors of its fast W4A4 layers (`FluxCUDALinear.fastLayer`)
    /// made ahead by one launch per four layers (`CUDASVDQW4A4FastLinear.prepareGates`), for gates of one sample;
    /// otherwise the gates as they are (each layer then makes its own, or takes the gated-add path).
    func preparedGates(_ uses: [(gate: ModulationChunk, layers: [FluxCUDALinear])]) throws -> [ModulationChunk] {
        let jobs = uses.flatMap { use in use.layers.compactMap(\.fastLayer).map { (layer: $0, gate: use.gate) } }
        guard !jobs.isEmpty, uses.allSatisfy({ $0.gate.table.shape.first == 1 }) else { return uses.map(\.gate) }
        let prepared = try CUDASVDQW4A4FastLinear.prepareGates(jobs, stream: context.currentStream)
        return uses.map {
            var gate = $0.gate
            gate.prepared = prepared
            return gate
        }
    }

    /// Queues `side` on the side stream and `main` on the current stream, so the two run at once on the GPU, then
    /// makes the current stream wait for the side work; returns both results. `side` gets ops whose allocations and
    /// launches go to the side stream and whose GEMM has its own cuBLASLt workspace; the two closures must not write
    /// what the other reads (both may read inputs made before). Without a side stream, runs `side` and then `main`
    /// in line.
    @discardableResult
    func concurrently<Side, Main>(side: (FluxCUDAOps) throws -> Side, main: (FluxCUDAOps) throws -> Main) throws -> (Side, Main) {
        guard let branch = sideStream else { return (try side(self), try main(self)) }
        var sideOps = self
        sideOps.gemm = branch.gemm
        sideOps.sideStream = nil
        let parent = context.currentStream
        try branch.fork.fork(from: parent)
        let results: (Side, Main)
        do {
            let sideResult = try context.withStream(branch.fork.stream) { try side(sideOps) }
            results = (sideResult, try main(self))
        } catch {
            // Keep the stream order of frees on the parent (the side work may still read its buffers).
            try? branch.fork.join(into: parent)
            throw error
        }
        try branch.fork.join(into: parent)
        return results
    }

    /// The stream the side work of `concurrently` runs on: the side stream, or the current one without it.
    var sideWorkStream: CUDAStream { sideStream?.fork.stream ?? context.currentStream }

    /// Makes the side stream wait for the work queued on the current stream so far. Buffers the side work made and
    /// the current stream read since (the text tokens' QKV projection, read by the joint attention) may be dropped
    /// after this: their frees, queued on the side stream, then follow those reads, and the next `concurrently` joins
    /// them back (a CUDA graph capture needs every fork joined).
    func orderSideStreamAfterCurrent() throws {
        try sideStream?.fork.fork(from: context.currentStream)
    }

    /// `x ← x + gate·y` with a per-sample gate.
    func gatedAdd(_ y: DeviceTensor, gate: ModulationChunk, into x: DeviceTensor) throws {
        try context.gatedAdd(residual: x, gate: gate, update: y, into: x)
    }

    /// LayerNorm without affine parameters, then adaLN modulation, into a new tensor.
    func layerNorm(_ x: DeviceTensor, _ modulation: AdaLNModulation) throws -> DeviceTensor {
        try context.layerNorm(x, modulation: modulation)
    }

    /// `layerNorm` as `layer`'s input: quantized for its fast W4A4 activation pass in the same kernel where it has one
    /// that takes it (`layerNorm(_:_:quantizedFor:)`), else 16-bit values.
    func layerNorm(_ x: DeviceTensor, _ modulation: AdaLNModulation, for layer: FluxCUDALinear) throws -> W4A4FastInput {
        try layerNorm(x, modulation, quantizedFor: layer.fastLayer?.inputPass)
    }

    /// `layerNorm` as the input of the fast W4A4 layers of `pass`: their codes and scales, written by the LayerNorm
    /// kernel, when the pass takes them from a norm (`W4A4FastInputPass.quantizedByNorms`); else (or for no pass)
    /// 16-bit values. Either way the layers get the same codes.
    func layerNorm(_ x: DeviceTensor, _ modulation: AdaLNModulation, quantizedFor pass: W4A4FastInputPass?) throws -> W4A4FastInput {
        guard let pass, pass.quantizedByNorms else { return .values(try layerNorm(x, modulation)) }
        return .quantized(try context.layerNorm(x, modulation: modulation, quantizedFor: pass))
    }

    /// The activation applied in place.
    func apply(_ activation: CUDAActivation, _ x: DeviceTensor) throws {
        try context.apply(activation, to: x, into: x)
    }

    /// `[B, Sᵢ, …]` parts stacked along the token axis.
    func concatTokens(_ parts: [DeviceTensor]) throws -> DeviceTensor {
        let shape = [parts[0].shape[0], parts.reduce(0) { $0 + $1.shape[1] }] + parts[0].shape.dropFirst(2)
        let output = try DeviceTensor(shape: shape, dtype: parts[0].dtype, context: context)
        try context.concatTokens(parts, into: output)
        return output
    }

    /// `x` `[B, S, …]` cut along the token axis into pieces of `sizes` tokens. For a batch of one the pieces are
    /// views of `x` (its token rows are contiguous: no copy; writes to a piece change `x`), else copies.
    func splitTokens(_ x: DeviceTensor, sizes: [Int]) throws -> [DeviceTensor] {
        if x.shape.first == 1, sizes.reduce(0, +) == x.shape[1] {
            let tokens = try x.reshaped(Array(x.shape.dropFirst()))
            var start = 0
            return try sizes.map { size in
                defer { start += size }
                let piece = try tokens.rows(start ..< start + size)
                return try piece.reshaped([1] + piece.shape)
            }
        }
        let pieces = try sizes.map {
            try DeviceTensor(shape: [x.shape[0], $0] + x.shape.dropFirst(2), dtype: x.dtype, context: context)
        }
        try context.splitTokens(x, into: pieces)
        return pieces
    }

    /// Parts `[..., Wᵢ]` with equal leading dimensions joined along the last dimension (each Wᵢ a multiple of 8):
    /// each token row is viewed as Wᵢ/8 "tokens" of 8 elements, so the token copy kernel does the work.
    func concatLastDimension(_ parts: [DeviceTensor]) throws -> DeviceTensor {
        let leading = Array(parts[0].shape.dropLast())
        let rows = leading.reduce(1, *)
        let views = try parts.map { part in
            guard Array(part.shape.dropLast()) == leading, let width = part.shape.last, width % 8 == 0 else {
                throw NunchakuError.invalidArgument(
                    context: "concatLastDimension", reason: "parts \(parts.map(\.shape)) need equal leading dimensions and widths that are multiples of 8")
            }
            return try part.reshaped([rows, width / 8, 8])
        }
        let joined = try concatTokens(views)
        return try joined.reshaped(leading + [joined.shape[1] * 8])
    }

    /// `[B, D]` viewed as `[B, 1, D]`; rank-3 tensors unchanged.
    private static func rank3(_ x: DeviceTensor) throws -> DeviceTensor {
        x.shape.count == 2 ? try x.reshaped([x.shape[0], 1, x.shape[1]]) : x
    }
}

/// A second stream for work of a block that is independent of the rest until a join (`FluxCUDAOps.concurrently`):
/// the double blocks' text tokens, whose layers are small (M = 512 rows at 1024²) and leave most of the GPU idle
/// alone, beside the image tokens. Its GEMM and the fast engine's lane for its stream (made by `init`) are its own,
/// so nothing the two streams write is shared.
struct FluxCUDASideStream: Sendable {
    let fork: CUDAStreamFork
    /// Dense GEMMs (LoRA branches, unquantized layers) of the side work.
    let gemm: CUDAGEMM

    /// A side stream on `context`, with the fast engine's lane for it (made now, so a first forward may be captured).
    init(context: CUDAContext, fastEngine: CUDAW4A4FastEngine?) throws {
        // High priority: the side work's kernels are dispatched ahead of the main stream's pending blocks, so the
        // text chain, which the joint attention waits for, does not queue behind the large image GEMMs (H200, fast
        // 1024² step: 84.5 ms against 85.3 ms at normal priority and 86.0 ms on one stream).
        fork = try CUDAStreamFork(context: context, priority: .high)
        gemm = CUDAGEMM(context: context)
        try fastEngine?.lane(for: fork.stream)
    }
}
