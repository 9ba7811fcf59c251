import Foundation
import NunchakuCore
import SafeTensors

/// Nunchaku's 4-bit T5-XXL (`awq-int4-flux.1-t5xxl.safetensors`): one safetensors file whose metadata key `config`
/// holds the transformers `T5Config` as JSON, with the encoder's tensors under transformers' names, each quantized
/// linear stored as a `TinyChatW4Layer` (group 128) instead of `<name>.weight`.
///
/// `CUDAT5EncoderModel(config:weights:…)` takes `weights` as they are (the layers stay 4-bit on the GPU);
/// `cpuModel(dtype:)` builds the CPU reference on the dequantized weights.
public struct T5AWQCheckpoint: Sendable {
    public let path: String
    public let config: T5EncoderConfig
    public let weights: SafeTensorsCheckpoint
    /// The quantization group size (Nunchaku's T5 uses 128).
    public static let groupSize = 128

    /// Opens the file and reads the config from its metadata.
    /// - Throws: `NunchakuError` naming the file when the metadata has no `config` or it is not a T5 encoder config;
    ///   the reader's errors for a broken file.
    public init(path: String) throws {
        let weights = try SafeTensorsCheckpoint(path: path)
        let metadata = try weights.files().first?.metadata ?? [:]
        guard let json = metadata["config"] else {
            throw NunchakuError.invalidArgument(
                context: path, reason: "no `config` in the safetensors metadata (expected Nunchaku's 4-bit T5 with its T5Config as JSON)")
        }
        self.path = path
        self.weights = weights
        config = try T5EncoderConfig.decode(Data(json.utf8), source: "\(path) metadata `config`")
    }

    /// The checkpoint with every quantized linear dequantized to bf16 `<name>.weight`.
    public var dequantizedWeights: TinyChatDequantizedWeights {
        TinyChatDequantizedWeights(weights, groupSize: Self.groupSize)
    }

    /// The CPU `T5EncoderModel` on the dequantized weights (held dense in memory).
    public func cpuModel(dtype: DType = .bf16) throws -> T5EncoderModel {
        try T5EncoderModel(config: config, weights: dequantizedWeights, source: path, dtype: dtype)
    }
}
