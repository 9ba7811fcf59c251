import Foundation
import NunchakuCore
import SafeTensors

/// What a finished layer shard records besides its tensors, in the shard's metadata.
public struct LayerShardRecord: Sendable, Equatable {
    /// Everything the layer's result depends on (settings, and hashes of its weights and calibration rows); a shard
    /// is reused only when this matches exactly.
    public let settings: String
    /// The chosen smoothing exponent (nil for the identity, and for AWQ layers).
    public let alpha: Double?
    /// The quantizer's final objective (W4A4) or the relative weight error (AWQ).
    public let relativeError: Double

    public init(settings: String, alpha: Double?, relativeError: Double) {
        self.settings = settings
        self.alpha = alpha
        self.relativeError = relativeError
    }

    var metadata: [String: String] {
        var entries = ["settings": settings, "relative_error": String(relativeError)]
        if let alpha { entries["alpha"] = String(alpha) }
        return entries
    }

    init?(metadata: [String: String]) {
        guard let settings = metadata["settings"], let error = metadata["relative_error"].flatMap(Double.init) else { return nil }
        self.init(settings: settings, alpha: metadata["alpha"].flatMap(Double.init), relativeError: error)
    }
}

/// The folder beside the output where a quantization keeps its finished layers (one safetensors shard per layer,
/// written atomically) and its calibration cache, so that an interrupted run can resume. Removed once the output
/// file is complete.
public struct QuantizationWorkFolder: Sendable {
    public let path: String

    /// The work folder of `output`: `<output>.parts`.
    public init(output: String) {
        path = output + ".parts"
    }

    /// Where the calibration activations recorded for this run are cached.
    public var calibrationCachePath: String { path + "/calibration.safetensors" }

    /// The shard of layer `index` (`name` is part of the file name for people looking into the folder).
    public func shardPath(index: Int, name: String) -> String {
        let number = String(index)
        return path + "/" + String(repeating: "0", count: max(0, 4 - number.count)) + number + "-" + name + ".safetensors"
    }

    /// Creates the folder (and its parents) when missing.
    public func create() throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw NunchakuError.io(path: path, reason: "cannot create the work folder: \(error.localizedDescription)")
        }
    }

    /// Deletes the folder and everything in it.
    public func remove() throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw NunchakuError.io(path: path, reason: "cannot remove the work folder: \(error.localizedDescription)")
        }
    }

    /// The record of a complete shard at `shardPath`, or nil when there is none (or it cannot be read: it is then
    /// simply redone).
    public func existingShard(at shardPath: String) -> LayerShardRecord? {
        guard FileManager.default.fileExists(atPath: shardPath), let file = try? SafeTensorsFile(path: shardPath),
              let metadata = file.metadata else { return nil }
        return LayerShardRecord(metadata: metadata)
    }

    /// Writes `tensors` (parameter name → tensor) as `<layer>.<parameter>` with `record` in the metadata, atomically.
    public func writeShard(at shardPath: String, layer: String, tensors: [String: Tensor], record: LayerShardRecord) throws {
        var writer = SafeTensorsWriter(metadata: record.metadata)
        for (parameter, tensor) in tensors { try writer.add("\(layer).\(parameter)", tensor) }
        try writer.write(to: shardPath)
    }
}
