import Models
import NunchakuCore

/// The implementation of each stage per device: CPU `FluxTransformer`, `CLIPTextModel`, `T5EncoderModel`,
/// `AutoencoderKLDecoder`; CUDA `FluxCUDATransformer`, `CUDACLIPTextModel`, `CUDAT5EncoderModel`,
/// `CUDAAutoencoderKLDecoder`. Nunchaku's 4-bit T5 (`options.textEncoder2AWQPath`) replaces `text_encoder_2/` on both.
extension FluxPipelineLoader {
    /// Checks the options that depend on the device before anything is loaded.
    /// - Throws: `FluxPipelineError.invalidSetting` for fast W4A4 numerics or fp8 attention on the CPU.
    static func checkDevice(_ options: FluxPipelineLoadOptions) throws {
        if case .cpu = options.device, options.numerics != .exact {
            throw FluxPipelineError.invalidSetting(
                setting: "numerics", reason: "\(options.numerics.rawValue) numerics run on the GPU only; use the cuda device or exact numerics")
        }
        if case .cpu = options.device, options.attention != .bf16 {
            throw FluxPipelineError.invalidSetting(
                setting: "attention", reason: "\(options.attention) attention runs on the GPU only; use the cuda device or bf16 attention")
        }
    }

    /// The transformer at `path` for `options.device`, and its source for messages.
    static func makeTransformer(path: String, options: FluxPipelineLoadOptions) throws -> (any FluxDenoising, String) {
        let files = try FluxModelFiles(path: path)
        switch options.device {
        case .cpu:
            return (try FluxTransformer(files: files, computeDType: options.dtype, quantizedLayers: options.quantizedLayers), files.source)
        case .cuda(let context):
            let transformer = try FluxCUDATransformer(files: files, context: context, numerics: options.numerics, attention: options.attention)
            transformer.fastEngine?.accumulation = options.fp8Accumulation
            return (transformer, files.source)
        }
    }

    /// CLIP from `folder` for `options.device`, and its hidden size.
    static func makeCLIP(folder: String, options: FluxPipelineLoadOptions) throws -> (any CLIPTextEncoding, Int) {
        switch options.device {
        case .cpu:
            let model = try CLIPTextModel(folder: folder, dtype: options.dtype)
            return (model, model.config.hiddenSize)
        case .cuda(let context):
            let model = try CUDACLIPTextModel(folder: folder, context: context)
            return (model, model.config.hiddenSize)
        }
    }

    /// T5 for `options.device` from `options.textEncoder2AWQPath` when set, else from `folder`; and its d_model.
    static func makeT5(folder: String, options: FluxPipelineLoadOptions) throws -> (any T5TextEncoding, Int) {
        let awq = try options.textEncoder2AWQPath.map(T5AWQCheckpoint.init(path:))
        switch options.device {
        case .cpu:
            let model = try awq?.cpuModel(dtype: options.dtype) ?? T5EncoderModel(folder: folder, dtype: options.dtype)
            return (model, model.config.dModel)
        case .cuda(let context):
            let model = try awq.map { try CUDAT5EncoderModel(awq: $0, context: context) }
                ?? CUDAT5EncoderModel(folder: folder, context: context)
            return (model, model.config.dModel)
        }
    }

    /// The VAE decoder at `path` for `options.device`, its config, and a note when it runs somewhere else than
    /// asked: a VAE the GPU decoder cannot run (`CUDAAutoencoderKLDecoder.unsupportedReason`) decodes on the CPU.
    static func makeVAE(path: String, options: FluxPipelineLoadOptions) throws -> (any FluxLatentDecoding, VAEConfig, note: String?) {
        switch options.device {
        case .cpu:
            let model = try AutoencoderKLDecoder(path: path, computeDType: options.dtype)
            return (model, model.config, nil)
        case .cuda(let context):
            let (config, _, _) = try AutoencoderKLDecoder.openFiles(path: path)
            if let reason = CUDAAutoencoderKLDecoder.unsupportedReason(config) {
                let model = try AutoencoderKLDecoder(path: path, computeDType: options.dtype)
                return (model, model.config, "the VAE decodes on the CPU: \(reason)")
            }
            let model = try CUDAAutoencoderKLDecoder(path: path, context: context)
            return (model, model.config, nil)
        }
    }
}
