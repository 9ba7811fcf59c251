import Foundation
import Testing
import CPUBackend
import NunchakuCore
import SVDQuant
@testable import Models

/// What the CUDA FLUX model decides on the host, before any GPU work: which configs its kernels can run, how each
/// checkpoint layer reaches it, how separate q/k/v weights are stacked, and the inputs and configs of random runs.
/// (The GPU forward itself is checked against the CPU model by `nunchaku selftest --filter flux` on a GPU machine.)
struct FluxCUDALoadingTests {
    @Test func configsTheKernelsCannotRunAreRefusedByName() throws {
        try FluxCUDATransformer.checkKernelLimits(FluxConfig(guidanceEmbeds: true), source: "flux-dev")
        let schnellFixture = FluxConfig(numLayers: 2, numSingleLayers: 2, attentionHeadDim: 32, numAttentionHeads: 2)
        #expect {
            try FluxCUDATransformer.checkKernelLimits(schnellFixture, source: "tiny")
        } throws: { error in
            "\(error)".contains("attention_head_dim 32") && "\(error)".contains("tiny")
        }
        #expect {
            try FluxCUDATransformer.checkKernelLimits(FluxConfig(jointAttentionDim: 100), source: "odd")
        } throws: { error in
            "\(error)".contains("joint_attention_dim 100")
        }
    }

    @Test func separateProjectionsAreStackedRowByRow() throws {
        let parts = (0..<3).map { part in Tensor((0..<6).map { Float(10 * part + $0) }, shape: [2, 3], dtype: .bf16) }
        let stacked = try FluxCUDALayerLoader.stackRows(parts, name: "q")
        #expect(stacked.shape == [6, 3] && stacked.dtype == .bf16)
        #expect(stacked.floats() == parts.flatMap { $0.floats() })
        let biases = try FluxCUDALayerLoader.stackRows(parts.map { try $0.reshaped([6]) }, name: "q")
        #expect(biases.shape == [18])
        #expect(throws: NunchakuError.self) { try FluxCUDALayerLoader.stackRows([parts[0], Tensor(zeros: [2, 4], dtype: .bf16)], name: "q") }
    }

    /// SVDQuant checkpoints: quantized layers arrive as the kernel-exact factory validated them, the rest dense.
    @Test func svdquantCheckpointLayersKeepTheirFormat() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path + "/merged.safetensors"
        try fixture.writeMerged(fixture.tensors, to: path)
        let checkpoint = try SVDQuantCheckpoint(path: path)
        let reader = WeightReader(SVDQuantModelTensors(checkpoint), source: "flux-svdq-int4")
        let linears = FluxCheckpointLinears(factory: SVDQuantLinearFactory(checkpoint: checkpoint))
        let width = fixture.config.innerDim
        let qkv = LinearLayerSpec(name: "transformer_blocks.0.qkv_proj", inFeatures: width, outFeatures: 3 * width,
                                  quantization: .w4a4(inputFollowsGELU: false))
        let fc2 = LinearLayerSpec(name: "transformer_blocks.0.mlp_fc2", inFeatures: 4 * width, outFeatures: width,
                                  quantization: .w4a4(inputFollowsGELU: true))
        let modulation = ModulationLayout.nunchaku.spec(name: "transformer_blocks.0.norm1.linear", width: width, chunks: 6)
        let embedder = LinearLayerSpec(name: "x_embedder", inFeatures: fixture.config.inChannels, outFeatures: width)
        guard case let .w4a4(qkvWeights) = try linears.hostLinear(qkv, weights: reader),
              case let .w4a4(fc2Weights) = try linears.hostLinear(fc2, weights: reader),
              case .awq = try linears.hostLinear(modulation, weights: reader),
              case let .dense(weight, _) = try linears.hostLinear(embedder, weights: reader)
        else {
            Issue.record("a layer came out in the wrong form")
            return
        }
        #expect(qkvWeights.precision == .int4 && qkvWeights.rank == 32 && !qkvWeights.actUnsigned)
        #expect(fc2Weights.actUnsigned)
        #expect(weight.floats() == fixture.tensors["x_embedder.weight"]!.floats())
        let missing = LinearLayerSpec(name: "transformer_blocks.9.out_proj", inFeatures: width, outFeatures: width,
                                      quantization: .w4a4(inputFollowsGELU: false))
        guard case .unloaded = try linears.hostLinear(missing, weights: reader) else {
            Issue.record("a layer without tensors must come out unloaded")
            return
        }
        #expect(throws: WeightLoadingError.self) { try reader.finish() }
    }

    /// Nunchaku's adaLN layers store their outputs interleaved; the GPU gets them chunk-major. Dense: the rows of
    /// the Nunchaku-layout weights come back as diffusers' (with the +1 folded into the scale chunks' bias).
    @Test func denseInterleavedModulationComesBackChunkMajor() throws {
        let fixture = try FluxFixture(variant: "dev")
        let converted = try FluxNunchakuLayout.convert(diffusers: fixture.weights, config: fixture.config)
        let width = fixture.config.innerDim
        let spec = ModulationLayout.nunchaku.spec(name: "transformer_blocks.0.norm1.linear", width: width, chunks: 6)
        let linears = FluxCheckpointLinears(factory: DenseLinearFactory())
        guard case let .dense(weight, bias) = try linears.hostLinear(spec, weights: WeightReader(converted, source: "dev"))
                .chunkMajor(chunks: 6, name: spec.name) else {
            Issue.record("not dense")
            return
        }
        #expect(weight.floats() == fixture.weights["transformer_blocks.0.norm1.linear.weight"]!.floats())
        let original = fixture.weights["transformer_blocks.0.norm1.linear.bias"]!.floats()
        let natural = bias.floats()
        for chunk in 0..<6 {
            let offset: Float = [1, 4].contains(chunk) ? 1 : 0
            let range = (chunk * width)..<((chunk + 1) * width)
            #expect(zip(natural[range], original[range]).allSatisfy { $0 == $1 + offset }, "chunk \(chunk)")
        }
    }

    /// AWQ: the chunk-major layer computes the interleaved layer's outputs, reordered (codes, scales, zeros and
    /// bias all move with their channel).
    @Test func awqModulationComesBackChunkMajor() throws {
        let config = FluxCUDARandomCheckpointTests.micro
        let width = config.innerDim
        let spec = ModulationLayout.nunchaku.spec(name: "single_transformer_blocks.0.norm.linear", width: width, chunks: 3)
        let host = try FluxRandomCheckpoint(config: config, format: .int4).hostLinear(spec)
        guard case let .awq(interleaved) = host, case let .awq(chunkMajor) = try host.chunkMajor(chunks: 3, name: spec.name) else {
            Issue.record("not AWQ")
            return
        }
        let x = Tensor((0..<(2 * width)).map { Float(($0 * 37) % 23) / 23 - 0.5 }, shape: [2, width], dtype: .bf16)
        let stored = try AWQW4A16Linear(weights: interleaved).forward(x).floats()
        let reordered = try AWQW4A16Linear(weights: chunkMajor).forward(x).floats()
        let n = 3 * width
        for row in 0..<2 {
            for chunk in 0..<3 {
                for d in 0..<width {
                    #expect(reordered[row * n + chunk * width + d] == stored[row * n + d * 3 + chunk])
                }
            }
        }
        #expect(throws: NunchakuError.self) {
            try FluxHostLinear.dense(weight: Tensor(zeros: [5, 2], dtype: .bf16), bias: Tensor(zeros: [5], dtype: .bf16))
                .chunkMajor(chunks: 3, name: "odd")
        }
    }

    @Test func randomInputsLookLikeATextToImageStep() throws {
        let dev = try FluxRandomInputs.make(config: FluxConfig(guidanceEmbeds: true), batch: 2, imageTokens: 4096, textTokens: 512)
        #expect(dev["hidden_states"]?.shape == [2, 4096, 64])
        #expect(dev["encoder_hidden_states"]?.shape == [2, 512, 4096])
        #expect(dev["pooled_projections"]?.shape == [2, 768])
        #expect(dev["guidance"]?.floats() == [3.5, 3.5])
        let ids = dev["img_ids"]!.floats()
        #expect(Array(ids[(3 * 4095)...]) == [0, 63, 63], "1024×1024 px is a 64×64 grid")
        #expect(Array(ids[(3 * 65)..<(3 * 66)]) == [0, 1, 1])
        #expect(dev["txt_ids"]!.floats().allSatisfy { $0 == 0 })
        let schnell = try FluxRandomInputs.make(config: FluxConfig(), batch: 1, imageTokens: 1024, textTokens: 256)
        #expect(schnell["guidance"] == nil)
        #expect(FluxRandomInputs.grid(1024) == (32, 32) && FluxRandomInputs.grid(96) == (8, 12) && FluxRandomInputs.grid(7) == (1, 7))
        #expect(throws: NunchakuError.self) { try FluxRandomInputs.make(config: FluxConfig(), batch: 0, imageTokens: 4, textTokens: 4) }
    }

    @Test func configsAreFoundByNameOrPath() throws {
        #expect(try FluxConfig.named("flux-dev") == FluxConfig(guidanceEmbeds: true))
        #expect(try FluxConfig.named("flux-schnell").guidanceEmbeds == false)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flux-cuda-config-\(UInt64.random(in: 0...UInt64.max)).json").path
        try Data(#"{"num_layers": 2, "num_single_layers": 4, "guidance_embeds": true}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try FluxConfig.named(path)
        #expect(config.numLayers == 2 && config.numSingleLayers == 4 && config.guidanceEmbeds)
        #expect { try FluxConfig.named("flux-pro") } throws: { "\($0)".contains("flux-dev, flux-schnell") }
    }
}
