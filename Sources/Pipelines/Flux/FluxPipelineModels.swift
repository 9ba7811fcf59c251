import CUDABackend
import Models
import NunchakuCore

/// The four models of a FLUX pipeline, each behind its stage protocol so CPU and GPU implementations mix freely.
public struct FluxPipelineModels: Sendable {
    public var clip: any CLIPTextEncoding
    public var t5: any T5TextEncoding
    public var transformer: any FluxDenoising
    public var vae: any FluxLatentDecoding
    /// What the loader did differently from what was asked (a stage kept on the CPU, and why), for the user.
    public var notes: [String]

    public init(clip: any CLIPTextEncoding, t5: any T5TextEncoding, transformer: any FluxDenoising,
                vae: any FluxLatentDecoding, notes: [String] = []) {
        self.clip = clip
        self.t5 = t5
        self.transformer = transformer
        self.vae = vae
        self.notes = notes
    }
}

/// Where the pipeline's models run.
public enum FluxPipelineDevice: Sendable {
    /// Everything on the CPU.
    case cpu
    /// Every model on this GPU in bf16: the transformer (SVDQuant layers 4-bit), CLIP, T5 (4-bit with
    /// `FluxPipelineLoadOptions.textEncoder2AWQPath`) and the VAE decoder.
    case cuda(CUDAContext)

    /// A short name for messages (`cpu`, `cuda`).
    public var name: String {
        switch self {
        case .cpu: "cpu"
        case .cuda: "cuda"
        }
    }
}

/// How `FluxPipelineLoader` builds the models.
public struct FluxPipelineLoadOptions: Sendable {
    public var device: FluxPipelineDevice
    /// The compute dtype of every stage, and so of the noise and the latents: `.bf16` (as diffusers with
    /// `torch_dtype=torch.bfloat16`; what SVDQuant checkpoints and the GPU need) or `.f32` (CPU only; the parity path).
    public var dtype: DType
    /// A transformer to use instead of the folder's `transformer/`: anything `FluxModelFiles` opens, e.g. a
    /// Nunchaku SVDQuant INT4/NVFP4 file.
    public var transformerPath: String?
    /// How SVDQuant layers compute on the CPU (kernel-exact needs bf16). The GPU always runs the 4-bit kernels.
    public var quantizedLayers: SVDQuantLinearFactory.Mode
    /// Nunchaku's 4-bit T5 (`awq-int4-flux.1-t5xxl.safetensors`, `T5AWQCheckpoint`) to use instead of the folder's
    /// `text_encoder_2/` (which may then be absent). On the GPU its linears stay 4-bit; on the CPU they are
    /// dequantized to bf16 (`T5AWQCheckpoint.cpuModel`).
    public var textEncoder2AWQPath: String?
    /// How the GPU transformer runs W4A4 layers (INT4 and NVFP4): `.exact` (Nunchaku's numerics) or `.fast` (FP8,
    /// sm_90+).
    /// The CPU has only the exact numerics.
    public var numerics: W4A4Numerics
    /// The GPU transformer's attention operands: `.bf16` or `.fp8` (e4m3, sm_90a). The CPU has only `.bf16`.
    public var attention: AttentionPrecision
    /// With `.fast` numerics: where the FP8 GEMMs use cuBLASLt's fast accumulation (`FP8Accumulation.standard` unless asked for).
    public var fp8Accumulation: FP8Accumulation

    public init(device: FluxPipelineDevice = .cpu, dtype: DType = .bf16, transformerPath: String? = nil,
                quantizedLayers: SVDQuantLinearFactory.Mode = .kernelExact, textEncoder2AWQPath: String? = nil,
                numerics: W4A4Numerics = .exact, attention: AttentionPrecision = .bf16, fp8Accumulation: FP8Accumulation = .standard) {
        self.device = device
        self.dtype = dtype
        self.transformerPath = transformerPath
        self.quantizedLayers = quantizedLayers
        self.textEncoder2AWQPath = textEncoder2AWQPath
        self.numerics = numerics
        self.attention = attention
        self.fp8Accumulation = fp8Accumulation
    }
}
