import Foundation
import NunchakuCore
import SafeTensors

/// A transformers text-encoder folder on disk (`text_encoder/` or `text_encoder_2/` of a FLUX pipeline):
/// `config.json` plus its weights, one `model.safetensors` or shards listed by `model.safetensors.index.json`.
public struct TextEncoderFiles {
    /// The folder the files were found in.
    public let folder: String
    /// The bytes of `config.json`.
    public let configData: Data
    /// The weights, every shard taken together.
    public let weights: SafeTensorsCheckpoint

    /// Opens the folder at `folder`.
    /// - Throws: `NunchakuError.io` naming the folder and listing exactly which of `config.json` and the weights
    ///   (`*.safetensors` or `*.safetensors.index.json`) are missing; the checkpoint's own errors for broken weights.
    public init(folder: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw NunchakuError.io(path: folder, reason: "no such folder (expected a text encoder folder with config.json and *.safetensors)")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let configPath = Self.join(folder, "config.json")
        var missing: [String] = []
        if !entries.contains("config.json") { missing.append("config.json") }
        if !entries.contains(where: { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") }) {
            missing.append("weights (model.safetensors, or model.safetensors.index.json with its shards)")
        }
        guard missing.isEmpty else {
            throw NunchakuError.io(path: folder, reason: "text encoder folder is missing \(missing.joined(separator: " and ")); looked in \(folder)")
        }
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw NunchakuError.io(path: configPath, reason: "cannot be read")
        }
        self.folder = folder
        self.configData = data
        self.weights = try SafeTensorsCheckpoint(path: folder)
    }

    /// The path of `config.json`, for messages.
    public var configPath: String { Self.join(folder, "config.json") }

    private static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}
