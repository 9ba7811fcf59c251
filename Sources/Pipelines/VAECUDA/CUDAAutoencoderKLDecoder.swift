import CUDABackend
import Models
import NunchakuCore

/// The decoder half of diffusers' `AutoencoderKL` (FLUX.1's VAE, and Stable Diffusion's) on an NVIDIA GPU in bf16
/// with float32 accumulation: the same layers, names and rounding points as the CPU `AutoencoderKLDecoder` (its
/// reference). Activations are channels-last `[B, H·W, C]` bf16; 3×3 convolutions are im2col bands + GEMMs
/// (cuBLASLt), GroupNorm(+SiLU), nearest ×2 upsampling and residual adds are own kernels, and the mid-block
/// attention is `encoderAttention` with one head of C channels. Latents come in and images go out as host tensors.
public final class CUDAAutoencoderKLDecoder: FluxLatentDecoding, @unchecked Sendable {
    public let config: VAEConfig
    public let context: CUDAContext
    private let ops: CUDAVAEOps
    private let postQuantConv: CUDAVAEConv?
    private let convIn: CUDAVAEConv
    private let midBlock: [MidLayer]
    private let upBlocks: [UpBlock]
    private let normOut: CUDAVAEGroupNorm
    private let convOut: CUDAVAEConv

    private enum MidLayer {
        case resnet(CUDAVAEResnet)
        case attention(CUDAVAEAttention)
    }

    private struct UpBlock {
        let resnets: [CUDAVAEResnet]
        let upsampleConv: CUDAVAEConv?
    }

    /// Loads from a diffusers VAE folder, a pipeline folder (its `vae/`), or a `.safetensors` file with a
    /// `config.json` beside it, like `AutoencoderKLDecoder(path:)`.
    public convenience init(path: String, context: CUDAContext) throws {
        let (config, checkpoint, location) = try AutoencoderKLDecoder.openFiles(path: path)
        try self.init(config: config, weights: checkpoint, context: context, source: location)
    }

    /// Why the GPU decoder cannot run `config`, or nil when it can: its GroupNorm kernel needs block widths that
    /// are multiples of 8 with an even number of channels per group, and at most `CUDAContext.groupNormMaxGroups`
    /// groups.
    public static func unsupportedReason(_ config: VAEConfig) -> String? {
        let groups = config.normNumGroups
        guard let width = config.blockOutChannels.first(where: {
            $0 % 8 != 0 || ($0 / groups) % 2 != 0 || groups > CUDAContext.groupNormMaxGroups
        }) else { return nil }
        return "block width \(width) with \(groups) groups: the GPU decoder needs widths that are multiples of 8 with an even number of channels per group, at most \(CUDAContext.groupNormMaxGroups) groups"
    }

    /// Builds the decoder from diffusers-named weights, strictly (one `WeightLoadingError` lists every problem);
    /// encoder tensors are ignored and legacy attention names accepted, as on the CPU.
    /// - Parameter patchBudgetBytes: the most scratch memory one band of 3×3 patches takes (256 MiB by default).
    public init(config: VAEConfig, weights: any TensorProvider, context: CUDAContext, source: String = "weights",
                gemm: CUDAGEMM? = nil, patchBudgetBytes: Int = 256 << 20) throws {
        try config.validate(source: source)
        let reader = WeightReader(VAEDecoderWeights(weights), source: source)
        if let reason = Self.unsupportedReason(config) {
            throw NunchakuError.unsupported(context: source, reason: reason)
        }
        let layout = VAEDecoderLayout(config)
        func conv(_ spec: VAEDecoderLayout.Conv) throws -> CUDAVAEConv {
            try CUDAVAEConv(spec.name, inChannels: spec.inChannels, outChannels: spec.outChannels, kernel: spec.kernel,
                            reader: reader, context: context)
        }
        func resnet(_ spec: VAEDecoderLayout.Resnet) throws -> CUDAVAEResnet {
            try CUDAVAEResnet(spec.name, inChannels: spec.inChannels, outChannels: spec.outChannels, groups: layout.groups,
                              reader: reader, context: context)
        }
        postQuantConv = try layout.postQuantConv.map(conv)
        convIn = try conv(layout.convIn)
        var mid = [MidLayer.resnet(try resnet(layout.midResnets.first))]
        if let attention = layout.midAttention {
            mid.append(.attention(try CUDAVAEAttention(
                attention.name, channels: attention.channels, groups: layout.groups, reader: reader, context: context)))
        }
        mid.append(.resnet(try resnet(layout.midResnets.second)))
        midBlock = mid
        upBlocks = try layout.upBlocks.map { block in
            UpBlock(resnets: try block.resnets.map(resnet), upsampleConv: try block.upsample.map(conv))
        }
        normOut = try CUDAVAEGroupNorm(layout.normOut.name, groups: layout.groups, channels: layout.normOut.channels,
                                       reader: reader, context: context)
        convOut = try conv(layout.convOut)
        try reader.finish()
        self.config = config
        self.context = context
        ops = CUDAVAEOps(context: context, gemm: gemm ?? CUDAGEMM(context: context), patchBudgetBytes: patchBudgetBytes)
    }

    /// Decodes latents in the VAE's space `[B, latent_channels, h, w]` to images `[B, out_channels, f·h, f·w]` (bf16).
    public func decode(_ latents: Tensor) throws -> Tensor {
        try decode(latents, transform: { $0 })
    }

    /// Decodes latents as the diffusion model leaves them: `z / scaling_factor + shift_factor` first (each step
    /// rounded to bf16, as the CPU decoder in bf16), then `decode`.
    public func decode(diffusionLatents latents: Tensor) throws -> Tensor {
        let scaling = Float(config.scalingFactor), shift = Float(config.shiftFactor ?? 0)
        let bf16 = VAEPrecision.bfloat16
        return try decode(latents, transform: { bf16.round(bf16.round($0 / scaling) + shift) })
    }

    private func decode(_ latents: Tensor, transform: (Float) -> Float) throws -> Tensor {
        guard latents.rank == 4, latents.shape[1] == config.latentChannels, latents.shape[2] > 0, latents.shape[3] > 0 else {
            throw NunchakuError.invalidArgument(
                context: "CUDAAutoencoderKLDecoder latents",
                reason: "expected [batch, \(config.latentChannels), height, width], got shape \(latents.shape)")
        }
        let (batch, channels, height, width) = (latents.shape[0], latents.shape[1], latents.shape[2], latents.shape[3])
        let values = try latents.floatValues(context: "CUDAAutoencoderKLDecoder latents")
        let first = postQuantConv ?? convIn
        var input = [Float](repeating: 0, count: batch * height * width * first.paddedIn)
        for sample in 0..<batch {
            for channel in 0..<channels {
                for pixel in 0..<(height * width) {
                    input[(sample * height * width + pixel) * first.paddedIn + channel] =
                        VAEPrecision.bfloat16.round(transform(VAEPrecision.bfloat16.round(values[(sample * channels + channel) * height * width + pixel])))
                }
            }
        }
        let x = try DeviceTensor(uploading: Tensor.rounding(input, shape: [batch, height * width, first.paddedIn], to: .bf16), context: context)
        let decoded = try forward(x, height: height, width: width).download().floatValues(context: "CUDAAutoencoderKLDecoder")
        let factor = config.upsamplingFactor, outChannels = config.outChannels
        let plane = factor * height * factor * width
        var images = [Float](repeating: 0, count: batch * outChannels * plane)
        for sample in 0..<batch {
            for pixel in 0..<plane {
                for channel in 0..<outChannels {
                    images[(sample * outChannels + channel) * plane + pixel] = decoded[(sample * plane + pixel) * convOut.paddedOut + channel]
                }
            }
        }
        return Tensor.rounding(images, shape: [batch, outChannels, factor * height, factor * width], to: .bf16)
    }

    /// Every layer on the GPU: `[B, h·w, C_latent (padded)]` → `[B, f²·h·w, out (padded to 8)]`.
    private func forward(_ latent: DeviceTensor, height: Int, width: Int) throws -> DeviceTensor {
        var (h, w) = (height, width)
        var x = try postQuantConv.map { try $0(latent, height: h, width: w, ops: ops) } ?? latent
        if postQuantConv != nil, convIn.paddedIn != x.shape[2] {
            throw NunchakuError.shapeMismatch(context: "decoder.conv_in", expected: [convIn.paddedIn], actual: [x.shape[2]])
        }
        x = try convIn(x, height: h, width: w, ops: ops)
        for layer in midBlock {
            switch layer {
            case let .resnet(block): x = try block(x, height: h, width: w, ops: ops)
            case let .attention(block): x = try block(x, ops: ops)
            }
        }
        for block in upBlocks {
            for resnet in block.resnets { x = try resnet(x, height: h, width: w, ops: ops) }
            if let conv = block.upsampleConv {
                let upsampled = try DeviceTensor(shape: [x.shape[0], 4 * h * w, x.shape[2]], dtype: .bf16, context: context)
                try context.upsampleNearest2x(x, height: h, width: w, into: upsampled)
                (h, w) = (2 * h, 2 * w)
                x = try conv(upsampled, height: h, width: w, ops: ops)
            }
        }
        return try convOut(normOut(x, silu: true, ops: ops), height: h, width: w, ops: ops)
    }

    /// Bytes of weights on the GPU.
    public var deviceWeightBytes: Int {
        func conv(_ c: CUDAVAEConv?) -> Int { (c?.weight.byteCount ?? 0) + (c?.bias.byteCount ?? 0) }
        func resnet(_ r: CUDAVAEResnet) -> Int { conv(r.conv1) + conv(r.conv2) + conv(r.shortcut) }
        let mid = midBlock.reduce(0) { total, layer in
            switch layer {
            case let .resnet(block): return total + resnet(block)
            case let .attention(block): return total + block.qkvWeight.byteCount + block.outWeight.byteCount
            }
        }
        return conv(postQuantConv) + conv(convIn) + conv(convOut) + mid
            + upBlocks.reduce(0) { $0 + $1.resnets.reduce(0) { $0 + resnet($1) } + conv($1.upsampleConv) }
    }
}
