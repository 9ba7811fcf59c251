import CUDABackend
import Models
import NunchakuCore

/// The GPU ops of one VAE decode: the context's default stream, the GEMM, and a cap on im2col scratch memory.
struct CUDAVAEOps {
    let context: CUDAContext
    let gemm: CUDAGEMM
    /// The most bytes one band of 3×3 patches may take (the patch matrix of a 1024² image at 128 channels would be
    /// 2.4 GB; bands of this size keep the GEMMs large and the scratch bounded).
    let patchBudgetBytes: Int
}

/// A stride-1 "same" convolution (3×3 with padding 1, or 1×1) with bias on channels-last bf16 maps `[B, H·W, C]`.
/// The weight is stored `[out, ky, kx, in]` in bf16, so a 3×3 convolution is im2col (`im2col3x3`, in bands of
/// pixels) and one GEMM per band, the bias added in the GEMM's float32 epilogue and the result rounded once (as the
/// CPU's `VAEConv2d`). Channel counts are padded with zeros to multiples of 8 (the kernels' 16-byte accesses): the
/// latent channels (4 in Stable Diffusion) on the input side, RGB on the output side.
struct CUDAVAEConv {
    let name: String
    let kernel: Int
    let inChannels: Int
    let outChannels: Int
    /// Padded widths: what the maps on the GPU have.
    let paddedIn: Int
    let paddedOut: Int
    let weight: DeviceTensor
    let bias: DeviceTensor

    init(_ name: String, inChannels: Int, outChannels: Int, kernel: Int, reader: WeightReader, context: CUDAContext) throws {
        self.name = name
        self.kernel = kernel
        self.inChannels = inChannels
        self.outChannels = outChannels
        paddedIn = (inChannels + 7) / 8 * 8
        paddedOut = (outChannels + 7) / 8 * 8
        let taps = kernel * kernel
        let torch = try parameterValues(reader, "\(name).weight", shape: [outChannels, inChannels, kernel, kernel], .bfloat16)
        var permuted = [Float](repeating: 0, count: paddedOut * taps * paddedIn)
        for out in 0..<outChannels {
            for channel in 0..<inChannels {
                for tap in 0..<taps {
                    permuted[(out * taps + tap) * paddedIn + channel] = torch[(out * inChannels + channel) * taps + tap]
                }
            }
        }
        let biasValues = try parameterValues(reader, "\(name).bias", shape: [outChannels], .bfloat16)
        weight = try DeviceTensor(uploading: Tensor.rounding(permuted, shape: [paddedOut, taps * paddedIn], to: .bf16), context: context)
        bias = try DeviceTensor(uploading: Tensor.rounding(biasValues + [Float](repeating: 0, count: paddedOut - outChannels),
                                                           shape: [paddedOut], to: .bf16), context: context)
    }

    /// `x` `[B, height·width, paddedIn]` → `[B, height·width, paddedOut]`.
    func callAsFunction(_ x: DeviceTensor, height: Int, width: Int, ops: CUDAVAEOps) throws -> DeviceTensor {
        guard x.shape.count == 3, x.shape[1] == height * width, x.shape[2] == paddedIn else {
            throw NunchakuError.shapeMismatch(context: name, expected: [x.shape.first ?? 1, height * width, paddedIn], actual: x.shape)
        }
        if kernel == 1 { return try ops.gemm.linear(x, weight: weight, bias: bias) }
        let (batch, pixels) = (x.shape[0], height * width)
        let output = try DeviceTensor(shape: [batch, pixels, paddedOut], dtype: .bf16, context: ops.context)
        let patchLength = 9 * paddedIn
        let band = max(1, min(pixels, ops.patchBudgetBytes / (2 * patchLength)))
        for sample in 0..<batch {
            var first = 0
            while first < pixels {
                let count = min(band, pixels - first)
                let patches = try DeviceTensor(shape: [count, patchLength], dtype: .bf16, context: ops.context)
                try ops.context.im2col3x3(x, sample: sample, height: height, width: width, firstPixel: first, count: count, into: patches)
                let rows = try ops.gemm.linear(patches, weight: weight, bias: bias)
                let rowBytes = 2 * paddedOut
                try ops.context.defaultStream.copy(count * rowBytes, from: rows.buffer, at: 0, to: output.buffer,
                                                   at: (sample * pixels + first) * rowBytes)
                first += count
            }
        }
        return output
    }
}

/// GroupNorm (eps 1e-6) with its affine parameters in float32 (rounded to bf16 first), optionally fused with SiLU.
struct CUDAVAEGroupNorm {
    let groups: Int
    let gamma: DeviceTensor
    let beta: DeviceTensor

    init(_ name: String, groups: Int, channels: Int, reader: WeightReader, context: CUDAContext) throws {
        self.groups = groups
        gamma = try DeviceTensor(uploading: Tensor(try parameterValues(reader, "\(name).weight", shape: [channels], .bfloat16), shape: [channels]),
                                 context: context)
        beta = try DeviceTensor(uploading: Tensor(try parameterValues(reader, "\(name).bias", shape: [channels], .bfloat16), shape: [channels]),
                                context: context)
    }

    func callAsFunction(_ x: DeviceTensor, silu: Bool, ops: CUDAVAEOps) throws -> DeviceTensor {
        let output = try DeviceTensor(shape: x.shape, dtype: .bf16, context: ops.context)
        try ops.context.groupNorm(x, groups: groups, gamma: gamma, beta: beta, eps: 1e-6, silu: silu, into: output)
        return output
    }
}

/// diffusers' `ResnetBlock2D` of the VAE decoder: `shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))))))`.
struct CUDAVAEResnet {
    let norm1: CUDAVAEGroupNorm
    let conv1: CUDAVAEConv
    let norm2: CUDAVAEGroupNorm
    let conv2: CUDAVAEConv
    let shortcut: CUDAVAEConv?

    init(_ name: String, inChannels: Int, outChannels: Int, groups: Int, reader: WeightReader, context: CUDAContext) throws {
        norm1 = try CUDAVAEGroupNorm("\(name).norm1", groups: groups, channels: inChannels, reader: reader, context: context)
        conv1 = try CUDAVAEConv("\(name).conv1", inChannels: inChannels, outChannels: outChannels, kernel: 3, reader: reader, context: context)
        norm2 = try CUDAVAEGroupNorm("\(name).norm2", groups: groups, channels: outChannels, reader: reader, context: context)
        conv2 = try CUDAVAEConv("\(name).conv2", inChannels: outChannels, outChannels: outChannels, kernel: 3, reader: reader, context: context)
        shortcut = inChannels == outChannels ? nil : try CUDAVAEConv(
            "\(name).conv_shortcut", inChannels: inChannels, outChannels: outChannels, kernel: 1, reader: reader, context: context)
    }

    func callAsFunction(_ x: DeviceTensor, height: Int, width: Int, ops: CUDAVAEOps) throws -> DeviceTensor {
        var h = try conv1(norm1(x, silu: true, ops: ops), height: height, width: width, ops: ops)
        h = try conv2(norm2(h, silu: true, ops: ops), height: height, width: width, ops: ops)
        if let shortcut {
            let residual = try shortcut(x, height: height, width: width, ops: ops)
            try ops.context.add(residual, h, into: residual)
            return residual
        }
        try ops.context.add(h, x, into: h)
        return h
    }
}

/// The mid block's single-head self-attention over the H·W pixels: `x + to_out(softmax(q·kᵀ/√C)·v)` with q, k, v
/// from `GroupNorm(x)` in one fused GEMM, and `encoderAttention` (one head of C ≤ 512 channels, queries in
/// blocks of 16, keys streamed: no score matrix is stored).
struct CUDAVAEAttention {
    let channels: Int
    let norm: CUDAVAEGroupNorm
    let qkvWeight: DeviceTensor
    let qkvBias: DeviceTensor
    let outWeight: DeviceTensor
    let outBias: DeviceTensor

    init(_ name: String, channels: Int, groups: Int, reader: WeightReader, context: CUDAContext) throws {
        guard channels % 2 == 0, channels <= CUDAContext.encoderAttentionMaxHeadDim else {
            throw NunchakuError.unsupported(
                context: name, reason: "\(channels) channels: the GPU attention takes an even width up to \(CUDAContext.encoderAttentionMaxHeadDim)")
        }
        self.channels = channels
        norm = try CUDAVAEGroupNorm("\(name).group_norm", groups: groups, channels: channels, reader: reader, context: context)
        func values(_ part: String, _ shape: [Int]) throws -> [Float] { try parameterValues(reader, "\(name).\(part)", shape: shape, .bfloat16) }
        let parts = ["to_q", "to_k", "to_v"]
        qkvWeight = try DeviceTensor(uploading: Tensor.rounding(try parts.flatMap { try values("\($0).weight", [channels, channels]) },
                                                                shape: [3 * channels, channels], to: .bf16), context: context)
        qkvBias = try DeviceTensor(uploading: Tensor.rounding(try parts.flatMap { try values("\($0).bias", [channels]) },
                                                              shape: [3 * channels], to: .bf16), context: context)
        outWeight = try DeviceTensor(uploading: Tensor.rounding(try values("to_out.0.weight", [channels, channels]),
                                                                shape: [channels, channels], to: .bf16), context: context)
        outBias = try DeviceTensor(uploading: Tensor.rounding(try values("to_out.0.bias", [channels]), shape: [channels], to: .bf16),
                                   context: context)
    }

    func callAsFunction(_ x: DeviceTensor, ops: CUDAVAEOps) throws -> DeviceTensor {
        let qkv = try ops.gemm.linear(try norm(x, silu: false, ops: ops), weight: qkvWeight, bias: qkvBias)
        let attended = try DeviceTensor(shape: x.shape, dtype: .bf16, context: ops.context)
        try ops.context.encoderAttention(qkv, layout: FusedQKVLayout(heads: 1, headDim: channels),
                                         scale: Float(1 / Double(channels).squareRoot()), into: attended)
        let projected = try ops.gemm.linear(attended, weight: outWeight, bias: outBias)
        try ops.context.add(projected, x, into: projected)
        return projected
    }
}
