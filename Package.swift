// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-nunchaku",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Nunchaku", targets: ["Nunchaku"]),
        .executable(name: "nunchaku", targets: ["NunchakuCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // DType, Tensor, numeric conversions, errors, the platform shim (mmap, dlopen).
        .target(name: "NunchakuCore"),
        // safetensors reader (memory-mapped, sharded) and writer.
        .target(name: "SafeTensors", dependencies: ["NunchakuCore"]),
        // Reference CPU ops: the oracle every GPU kernel is checked against.
        .target(name: "CPUBackend", dependencies: ["NunchakuCore"]),
        // SVDQuant layouts, quantized linears, checkpoint formats.
        .target(name: "SVDQuant", dependencies: ["NunchakuCore", "SafeTensors", "CPUBackend"]),
        // SVDQuant post-training quantization: smoothing search, low-rank SVD branch, RTN residual (LAPACK via dlopen).
        .target(name: "Quantizer", dependencies: ["NunchakuCore", "CPUBackend", "SVDQuant", "SafeTensors", "Models"]),
        // CUDA through dlopen: driver API, NVRTC, memory, kernel cache, kernels.
        .target(
            name: "CUDABackend",
            dependencies: ["NunchakuCore", "CPUBackend", "SVDQuant"],
            resources: [
                // Kernel sources, compiled by NVRTC at first use. Adding a kernel file: one line here and one
                // entry in Compilation/KernelRegistry.swift.
                .embedInCode("Kernels/nunchaku_common.cuh"),
                .embedInCode("Kernels/convert.cu"),
                .embedInCode("Kernels/w4a4_half.cuh"),
                .embedInCode("Kernels/w4a4_fragments.cuh"),
                .embedInCode("Kernels/w4a4_quantize.cu"),
                .embedInCode("Kernels/w4a4_gemm.cu"),
                .embedInCode("Kernels/awq_gemv.cu"),
                .embedInCode("Kernels/ops_common.cuh"),
                .embedInCode("Kernels/ops_mma.cuh"),
                .embedInCode("Kernels/ops_norm.cu"),
                .embedInCode("Kernels/ops_elementwise.cu"),
                .embedInCode("Kernels/ops_rotary.cu"),
                .embedInCode("Kernels/ops_qkv_heads.cu"),
                .embedInCode("Kernels/ops_tokens.cu"),
                .embedInCode("Kernels/attention_fa2.cu"),
                .embedInCode("Kernels/attention_wgmma.cuh"),
                .embedInCode("Kernels/attention_wgmma.cu"),
                .embedInCode("Kernels/attention_fp8_operands.cu"),
                .embedInCode("Kernels/gemm_mma.cu"),
                .embedInCode("Kernels/encoder_attention.cu"),
                .embedInCode("Kernels/encoder_elementwise.cu"),
                .embedInCode("Kernels/encoder_awq_dequant.cu"),
                .embedInCode("Kernels/conv_im2col.cu"),
                .embedInCode("Kernels/groupnorm.cu"),
                .embedInCode("Kernels/w4a4_fp8.cuh"),
                .embedInCode("Kernels/w4a4_fp8_quantize.cuh"),
                .embedInCode("Kernels/w4a4_fp8_quantize.cu"),
                .embedInCode("Kernels/w4a4_fp8_weights.cu"),
            ]
        ),
        // GPU kernels checked against the CPU references (`nunchaku selftest`).
        .target(name: "SelfTest", dependencies: ["NunchakuCore", "CPUBackend", "SVDQuant", "CUDABackend", "Models", "Pipelines"]),
        // Diffusion models (FLUX.1 first).
        .target(name: "Models", dependencies: ["NunchakuCore", "SafeTensors", "CPUBackend", "SVDQuant", "CUDABackend"]),
        // Text-to-image pipelines: tokenizers, schedulers, PyTorch-identical noise, text encoders, VAE, image output.
        .target(name: "Pipelines", dependencies: ["NunchakuCore", "SafeTensors", "CPUBackend", "CUDABackend", "Models"]),
        // The built-in flux-shapes demo model: caption grammar, pixel-analysis checker, model locator, `nunchaku eval`.
        .target(name: "ShapesDemo", dependencies: ["NunchakuCore", "SafeTensors", "CPUBackend", "Models", "Pipelines", "Quantizer"]),
        // The umbrella library: `import Nunchaku`.
        .target(name: "Nunchaku", dependencies: ["NunchakuCore", "SafeTensors", "CPUBackend", "SVDQuant", "Quantizer", "CUDABackend", "SelfTest", "Models", "Pipelines", "ShapesDemo"]),
        .executableTarget(
            name: "NunchakuCLI",
            dependencies: ["Nunchaku", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "NunchakuCoreTests", dependencies: ["NunchakuCore"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "CPUBackendTests", dependencies: ["CPUBackend", "SafeTensors"], exclude: ["Fixtures"]),
        .testTarget(name: "SVDQuantTests", dependencies: ["SVDQuant"]),
        .testTarget(name: "QuantizerTests", dependencies: ["Quantizer", "CUDABackend"]),
        .testTarget(name: "CUDABackendTests", dependencies: ["CUDABackend"]),
        .testTarget(name: "SelfTestTests", dependencies: ["SelfTest"]),
        .testTarget(name: "PipelinesTests", dependencies: ["Pipelines"], exclude: ["Fixtures"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "SafeTensors"], exclude: ["Fixtures"]),
        .testTarget(name: "ShapesDemoTests", dependencies: ["ShapesDemo", "Pipelines", "Quantizer", "SafeTensors", "NunchakuCore"]),
    ],
    swiftLanguageModes: [.v6]
)
