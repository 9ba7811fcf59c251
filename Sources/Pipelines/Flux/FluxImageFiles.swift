import Foundation

/// Writing a run's images as PNG files with their settings in text chunks.
public enum FluxImageFiles {
    /// The file of each of `count` images: `path` itself for one image, else `out-1.png`, `out-2.png`, … beside it
    /// (`.png` when `path` has no extension).
    public static func paths(for path: String, count: Int) -> [String] {
        guard count > 1 else { return [path] }
        let stem = (path as NSString).deletingPathExtension
        let pathExtension = (path as NSString).pathExtension
        return (1...count).map { "\(stem)-\($0).\(pathExtension.isEmpty ? "png" : pathExtension)" }
    }

    /// Writes every image of `output` (each file replaced atomically) with `output.pngText(imageIndex:extra:)`.
    /// - Returns: the paths written, in batch order.
    /// - Throws: `NunchakuError.io` naming a file that cannot be written.
    @discardableResult
    public static func write(_ output: FluxPipelineOutput, to path: String, extra: [PNGWriter.TextEntry] = []) throws -> [String] {
        let paths = paths(for: path, count: output.images.count)
        for (index, file) in paths.enumerated() {
            try PNGWriter.write(output.images[index], to: file, text: output.pngText(imageIndex: index, extra: extra))
        }
        return paths
    }
}
