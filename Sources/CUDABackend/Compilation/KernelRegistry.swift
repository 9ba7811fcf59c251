/// A CUDA C++ header every kernel source may include by name.
public struct KernelHeader: Sendable, Hashable {
    public let name: String
    public let text: String
}

/// One `.cu` file of `Sources/CUDABackend/Kernels`, embedded in the binary, with the kernels it defines.
public struct KernelSource: Sendable, Hashable {
    /// The file name (`convert.cu`), used in messages and cache file names.
    public let name: String
    public let text: String
    /// The `extern "C"` kernel entry points the file defines.
    public let kernelNames: [String]
}

/// Every embedded kernel file. To add a kernel file: put it in `Sources/CUDABackend/Kernels/`, add an
/// `.embedInCode("Kernels/<file>")` line to the CUDABackend target in Package.swift, and one entry to `sources` below
/// (a test checks that each listed kernel exists in its file and that every `NK_KERNEL` of a file is listed).
public enum KernelRegistry {
    /// Headers handed to NVRTC with every source (kernels include them with `#include "<name>"`).
    public static let headers: [KernelHeader] = [
        KernelHeader(name: "nunchaku_common.cuh", text: text(PackageResources.nunchaku_common_cuh)),
        KernelHeader(name: "w4a4_half.cuh", text: text(PackageResources.w4a4_half_cuh)),
        KernelHeader(name: "w4a4_fragments.cuh", text: text(PackageResources.w4a4_fragments_cuh)),
        KernelHeader(name: "ops_common.cuh", text: text(PackageResources.ops_common_cuh)),
        KernelHeader(name: "ops_mma.cuh", text: text(PackageResources.ops_mma_cuh)),
        KernelHeader(name: "w4a4_fp8.cuh", text: text(PackageResources.w4a4_fp8_cuh)),
        KernelHeader(name: "w4a4_fp8_quantize.cuh", text: text(PackageResources.w4a4_fp8_quantize_cuh)),
        KernelHeader(name: "attention_wgmma.cuh", text: text(PackageResources.attention_wgmma_cuh)),
    ]

    /// Kernel files.
    public static let sources: [KernelSource] = [
        KernelSource(name: "convert.cu", text: text(PackageResources.convert_cu),
                     kernelNames: ["nunchaku_convert_f32_to_bf16", "nunchaku_convert_bf16_to_f32"]),
        KernelSource(name: "w4a4_quantize.cu", text: text(PackageResources.w4a4_quantize_cu),
                     kernelNames: ["bf16", "f16"].flatMap { type in
                         ["int4", "int4_unsigned", "nvfp4"].map { "w4a4_quantize_\(type)_\($0)" }
                     }),
        KernelSource(name: "w4a4_gemm.cu", text: text(PackageResources.w4a4_gemm_cu),
                     kernelNames: ["bf16", "f16"].flatMap { type in
                         ["int4_s4", "int4_s8", "int4_unsigned_s4", "int4_unsigned_s8", "nvfp4"].map { "w4a4_gemm_\(type)_\($0)" }
                     }),
        KernelSource(name: "awq_gemv.cu", text: text(PackageResources.awq_gemv_cu),
                     kernelNames: ["bf16", "f16"].flatMap { type in [1, 2, 4].map { "awq_gemv_rows\($0)_\(type)" } }),
        KernelSource(name: "ops_norm.cu", text: text(PackageResources.ops_norm_cu),
                     kernelNames: ["nunchaku_layernorm_bf16", "nunchaku_layernorm_f16", "nunchaku_layernorm_fp8_quantize_bf16",
                                   "nunchaku_layernorm_fp8_quantize_f16", "nunchaku_rmsnorm_bf16", "nunchaku_rmsnorm_f16"]),
        KernelSource(name: "ops_elementwise.cu", text: text(PackageResources.ops_elementwise_cu),
                     kernelNames: ["nunchaku_gelu_tanh_bf16", "nunchaku_gelu_tanh_f16", "nunchaku_silu_bf16", "nunchaku_silu_f16",
                                   "nunchaku_gated_add_bf16", "nunchaku_gated_add_f16"]),
        KernelSource(name: "ops_rotary.cu", text: text(PackageResources.ops_rotary_cu),
                     kernelNames: ["nunchaku_rotary_bf16", "nunchaku_rotary_f16"]),
        KernelSource(name: "ops_qkv_heads.cu", text: text(PackageResources.ops_qkv_heads_cu),
                     kernelNames: ["nunchaku_qkv_heads_bf16", "nunchaku_qkv_heads_f16", "nunchaku_qkv_heads_fp8_bf16", "nunchaku_qkv_heads_fp8_f16"]),
        KernelSource(name: "ops_tokens.cu", text: text(PackageResources.ops_tokens_cu),
                     kernelNames: ["nunchaku_copy_tokens_16b", "nunchaku_copy_tokens_1b"]),
        KernelSource(name: "attention_fa2.cu", text: text(PackageResources.attention_fa2_cu),
                     kernelNames: ["nunchaku_attention_bf16_d64", "nunchaku_attention_bf16_d128",
                                   "nunchaku_attention_f16_d64", "nunchaku_attention_f16_d128"]),
        KernelSource(name: "attention_wgmma.cu", text: text(PackageResources.attention_wgmma_cu),
                     kernelNames: ["bf16", "f16"].flatMap { type in ["d64", "d128"].map { "nunchaku_attention_wgmma_\(type)_\($0)" } }
                        + ["", "codes_"].flatMap { variant in ["bf16", "f16"].map { "nunchaku_attention_wgmma_fp8_\(variant)\($0)_d128" } }),
        KernelSource(name: "attention_fp8_operands.cu", text: text(PackageResources.attention_fp8_operands_cu),
                     kernelNames: ["amax", "codes", "value_codes"].flatMap { pass in ["bf16", "f16"].map { "nunchaku_attention_fp8_\(pass)_\($0)" } }),
        KernelSource(name: "gemm_mma.cu", text: text(PackageResources.gemm_mma_cu),
                     kernelNames: ["nunchaku_gemm_bf16", "nunchaku_gemm_f16"]),
        KernelSource(name: "encoder_attention.cu", text: text(PackageResources.encoder_attention_cu),
                     kernelNames: [2, 4, 16].map { "nunchaku_encoder_attention_bf16_c\($0)" }),
        KernelSource(name: "encoder_elementwise.cu", text: text(PackageResources.encoder_elementwise_cu),
                     kernelNames: ["nunchaku_encoder_add_bf16", "nunchaku_encoder_quick_gelu_bf16", "nunchaku_encoder_gated_gelu_bf16"]),
        KernelSource(name: "encoder_awq_dequant.cu", text: text(PackageResources.encoder_awq_dequant_cu),
                     kernelNames: ["nunchaku_encoder_awq_dequant_bf16"]),
        KernelSource(name: "conv_im2col.cu", text: text(PackageResources.conv_im2col_cu),
                     kernelNames: ["nunchaku_conv_im2col3x3_bf16", "nunchaku_conv_upsample2x_bf16"]),
        KernelSource(name: "groupnorm.cu", text: text(PackageResources.groupnorm_cu),
                     kernelNames: ["nunchaku_groupnorm_sums_bf16", "nunchaku_groupnorm_finalize", "nunchaku_groupnorm_apply_bf16"]),
        KernelSource(name: "w4a4_fp8_quantize.cu", text: text(PackageResources.w4a4_fp8_quantize_cu),
                     kernelNames: ["bf16", "f16"].flatMap { type in
                         ["", "_shifted"].flatMap { shift in
                             ["kept6", "kept3", "wide", "plain"].map { "w4a4_fp8_quantize_\(type)\(shift)_\($0)" }
                         }
                     }),
        KernelSource(name: "w4a4_fp8_weights.cu", text: text(PackageResources.w4a4_fp8_weights_cu),
                     kernelNames: ["int4", "nvfp4"].flatMap { precision in
                         ["bf16", "f16"].flatMap { type in
                             ["", "_r32"].map { "w4a4_fp8_expand_weights_\(precision)_\(type)\($0)" }
                                 + ["w4a4_fp8_expand_weights_wgmma_\(precision)_\(type)_r32"]
                         }
                     } + ["w4a4_fp8_gated_channels_bf16", "w4a4_fp8_gated_channels_f16"]),
    ]

    /// The file that defines `kernel`, if any.
    public static func source(defining kernel: String) -> KernelSource? {
        sources.first { $0.kernelNames.contains(kernel) }
    }

    private static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
