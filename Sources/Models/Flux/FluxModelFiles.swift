import Foundation
import NunchakuCore
import SafeTensors

/// A FLUX transformer on disk: its config and its weights.
///
/// `path` may be a diffusers transformer folder (`config.json` + `diffusion_pytorch_model*.safetensors`, sharded or
/// not), a pipeline folder (its `transformer/` subfolder is used), Nunchaku's legacy folder (`config.json` +
/// `transformer_blocks`/`unquantized_layers`), or one `.safetensors` file (or shard index) whose `__metadata__`
/// holds the config under `config` (Nunchaku merged files) or that has a `config.json` beside it.
public struct FluxModelFiles {
    public let config: FluxConfig
    public let weights: SafeTensorsCheckpoint
    /// The folder or file the weights come from, for messages.
    public let source: String

    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw NunchakuError.io(path: path, reason: "no such file or folder")
        }
        var location = path
        if isDirectory.boolValue, Self.isFolder(Self.join(path, "transformer")) {
            location = Self.join(path, "transformer")
        }
        let checkpoint = try SafeTensorsCheckpoint(path: location)
        let configFile = Self.join(checkpoint.folder, "config.json")
        if !isDirectory.boolValue, let embedded = try checkpoint.files().first?.metadata?["config"] {
            config = try FluxConfig.decode(Data(embedded.utf8), source: "\(location) metadata config")
        } else if FileManager.default.fileExists(atPath: configFile) {
            guard let data = FileManager.default.contents(atPath: configFile) else {
                throw NunchakuError.io(path: configFile, reason: "cannot be read")
            }
            config = try FluxConfig.decode(data, source: configFile)
        } else {
            throw NunchakuError.invalidArgument(
                context: location, reason: "no transformer config: expected \(configFile) or a `config` metadata entry")
        }
        weights = checkpoint
        source = location
    }

    private static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    private static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}
