import Foundation
import NunchakuCore
import SafeTensors

extension AutoencoderKLDecoder {
    /// Loads the decoder from disk: a diffusers VAE folder (`config.json` + `diffusion_pytorch_model*.safetensors`,
    /// sharded or not), a pipeline folder (its `vae/` subfolder is used), or one `.safetensors` file with a
    /// `config.json` beside it. Loading is strict (see `init(config:weights:computeDType:source:)`).
    /// - Throws: `NunchakuError` naming the path when there is no config or it is not an AutoencoderKL config,
    ///   `SafeTensorsError` for unreadable weight files, `WeightLoadingError` for tensors that do not fit.
    public init(path: String, computeDType: DType = .f32) throws {
        let (config, checkpoint, location) = try Self.openFiles(path: path)
        try self.init(config: config, weights: checkpoint, computeDType: computeDType, source: location)
    }

    /// The config, the weights and the folder or file they were found in, for `path` as `init(path:computeDType:)`
    /// takes it (shared with the GPU decoder).
    static func openFiles(path: String) throws -> (VAEConfig, SafeTensorsCheckpoint, String) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw NunchakuError.io(path: path, reason: "no such file or folder")
        }
        var location = path
        let vaeFolder = URL(fileURLWithPath: path).appendingPathComponent("vae").path
        var vaeIsDirectory: ObjCBool = false
        if isDirectory.boolValue, FileManager.default.fileExists(atPath: vaeFolder, isDirectory: &vaeIsDirectory), vaeIsDirectory.boolValue {
            location = vaeFolder
        }
        let checkpoint = try SafeTensorsCheckpoint(path: location)
        let configPath = URL(fileURLWithPath: checkpoint.folder).appendingPathComponent("config.json").path
        guard let json = FileManager.default.contents(atPath: configPath) else {
            throw NunchakuError.io(path: configPath, reason: "no readable VAE config.json beside the weights")
        }
        return (try VAEConfig.decode(json, source: configPath), checkpoint, location)
    }
}
