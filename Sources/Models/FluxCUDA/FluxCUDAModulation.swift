import CUDABackend
import NunchakuCore

/// An adaptive-norm linear on the GPU (`norm1.linear`, `norm.linear`, `norm_out.linear`): `SiLU(temb)` `[B, D]` →
/// a table `[B, S·D]` of S chunks, chunk-major (interleaved checkpoint layers are reordered at load).
struct FluxCUDAModulation: Sendable {
    let linear: FluxCUDALinear
    let chunkCount: Int
    /// 1 for diffusers' `x·(1 + scale) + shift`, 0 where the bias holds the +1 (Nunchaku).
    let scaleOffset: Float

    init(name: String, width: Int, chunkCount: Int, layout: ModulationLayout, loader: FluxCUDALayerLoader) throws {
        linear = try loader.modulation(name, width: width, chunks: chunkCount, layout: layout)
        self.chunkCount = chunkCount
        scaleOffset = layout.scaleOffset
    }

    /// The chunks for `conditioning`.
    func table(_ conditioning: DeviceTensor, _ ops: FluxCUDAOps) throws -> FluxCUDAModulationTable {
        FluxCUDAModulationTable(table: try ops.linear(linear, conditioning), scaleOffset: scaleOffset)
    }
}

/// One modulation layer's output: chunks read in place by the norm and gated-add kernels.
struct FluxCUDAModulationTable {
    let table: DeviceTensor
    let scaleOffset: Float

    /// Chunk `index` as a `[B, D]` operand.
    func chunk(_ index: Int) -> ModulationChunk { ModulationChunk(table, chunk: index) }

    /// `LN(x)·(offset + chunk[scale]) + chunk[shift]`.
    func adaLN(shift: Int, scale: Int) -> AdaLNModulation {
        AdaLNModulation(shift: chunk(shift), scale: chunk(scale), scaleOffset: scaleOffset)
    }
}

/// The MLP of a block: `fc2(GELU_tanh(fc1(x)))`.
struct FluxCUDAFeedForward: Sendable {
    let input: FluxCUDALinear
    let output: FluxCUDALinear

    /// `residual ← residual + gate·output(GELU(input(x)))`; `x` 16-bit values, or activations quantized for
    /// `input`'s fast W4A4 activation pass.
    func gatedAdd(_ x: W4A4FastInput, gate: ModulationChunk, into residual: DeviceTensor, _ ops: FluxCUDAOps) throws {
        try ops.linearGatedAdd(output, .values(try ops.linearGELU(input, x)), gate: gate, into: residual)
    }
}
