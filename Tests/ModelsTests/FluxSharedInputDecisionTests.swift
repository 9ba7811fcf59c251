import CUDABackend
import NunchakuCore
import SVDQuant
import Testing
@testable import Models

/// The load-time decision behind the CUDA model's shared activation pass, on random checkpoints: a single block's
/// `mlp_fc1` gets its `qkv_proj`'s smoothing vector (as DeepCompressor writes them), so the two may share one pass;
/// a double block's layers keep their own vectors and do not.
struct FluxSharedInputDecisionTests {
    static func weights(_ checkpoint: FluxRandomCheckpoint, _ name: String, _ k: Int, _ n: Int) throws -> SVDQW4A4Weights {
        guard case let .w4a4(weights) = try checkpoint.hostLinear(
            LinearLayerSpec(name: name, inFeatures: k, outFeatures: n, quantization: .w4a4(inputFollowsGELU: false))) else {
            throw NunchakuError.invalidArgument(context: name, reason: "not a W4A4 layer")
        }
        return weights
    }

    @Test(arguments: [FluxRandomCheckpoint.Format.int4, .nvfp4])
    func singleBlocksShareTheirInputPassDoubleBlocksDoNot(format: FluxRandomCheckpoint.Format) throws {
        let checkpoint = try FluxRandomCheckpoint(config: FluxCUDARandomCheckpointTests.micro, format: format, seed: 4)
        let single = try ["mlp_fc1", "qkv_proj"].map { try Self.weights(checkpoint, "single_transformer_blocks.0.\($0)", 128, $0 == "qkv_proj" ? 384 : 512) }
        #expect(single[0].canonical.smooth.floats() == single[1].canonical.smooth.floats())
        #expect(CUDAW4A4FastSharedInput.canShare(single, type: .bf16))
        let double = try ["mlp_fc1", "qkv_proj"].map { try Self.weights(checkpoint, "transformer_blocks.0.\($0)", 128, $0 == "qkv_proj" ? 384 : 512) }
        #expect(double[0].canonical.smooth.floats() != double[1].canonical.smooth.floats())
        #expect(!CUDAW4A4FastSharedInput.canShare(double, type: .bf16))
        #expect(FluxRandomCheckpoint.smoothingLayer("single_transformer_blocks.12.mlp_fc1") == "single_transformer_blocks.12.qkv_proj")
        #expect(FluxRandomCheckpoint.smoothingLayer("transformer_blocks.3.mlp_fc1") == "transformer_blocks.3.mlp_fc1")
    }
}
