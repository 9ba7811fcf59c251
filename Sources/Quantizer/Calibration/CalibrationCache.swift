import Foundation
import NunchakuCore
import SafeTensors

/// Keeps the activations recorded from `--calibration-inputs` in the work folder, so a resumed quantization does
/// not run the model again. A cached file is used only when its key matches: the inputs' bytes, the model files'
/// paths, sizes and modification times, and the sampling settings.
public enum CalibrationCache {
    /// The key of a recording of `model` on the input files at `inputPaths`; `settings` describes anything else
    /// the recording depends on (e.g. the pipeline and the steps of prompt-driven calibration).
    public static func key(model: FluxSourceModel, inputPaths: [String], rowsPerLayer: Int, seed: UInt64,
                           settings: String = "") throws -> String {
        var hash = ContentHash()
        hash.combine("rows \(rowsPerLayer) seed \(seed)")
        if !settings.isEmpty { hash.combine(settings) }
        for path in model.weights.filePaths + [model.weights.folder + "/config.json"] {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            hash.combine("\(path) \(size) \(modified)")
        }
        for path in inputPaths {
            let file = try MappedFile(path: path)
            hash.combine(file.bytes)
        }
        return hash.hex
    }

    /// The cached calibration at `path` when its key is `key`, else nil.
    public static func load(path: String, key: String) -> CalibrationSet? {
        guard FileManager.default.fileExists(atPath: path), let file = try? SafeTensorsFile(path: path),
              file.metadata?["cache_key"] == key else { return nil }
        return try? CalibrationSet.read(path: path)
    }

    /// Stores `calibration` at `path` under `key`.
    public static func store(_ calibration: CalibrationSet, path: String, key: String) throws {
        try calibration.write(to: path, metadata: ["cache_key": key])
    }
}
