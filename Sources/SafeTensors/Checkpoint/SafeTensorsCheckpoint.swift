import Foundation
import NunchakuCore

/// A checkpoint presented as one name → tensor map, whatever its files look like:
/// a single `.safetensors` file, a sharded checkpoint's `*.safetensors.index.json`, or a folder
/// (which holds either one index, or `.safetensors` files whose tensors are taken together, as in
/// Nunchaku's legacy `transformer_blocks` + `unquantized_layers` layout).
///
/// Shards named by an index are mapped only when one of their tensors (or `files()`) is asked for.
public final class SafeTensorsCheckpoint: @unchecked Sendable {
    /// How the checkpoint's files were found.
    public enum Layout: Sendable, Equatable {
        /// One `.safetensors` file.
        case singleFile
        /// Shards listed by the index file at this path.
        case shardIndex(String)
        /// Every `.safetensors` file of a folder that has no index.
        case folder
    }

    /// The path the checkpoint was opened from.
    public let path: String
    public let layout: Layout
    /// The folder holding the checkpoint's files (where `config.json` would be).
    public let folder: String
    /// The paths of the checkpoint's `.safetensors` files, sorted.
    public let filePaths: [String]
    /// Every tensor name, sorted by UTF-8 bytes.
    public let tensorNames: [String]
    /// The index's `metadata` member (e.g. `{"total_size": …}`) for sharded checkpoints.
    public let indexMetadata: JSONValue?

    private let filePathByTensor: [String: String]
    private let lock = NSLock()
    private var openFiles: [String: SafeTensorsFile]

    /// Opens the checkpoint at `path` (file, index or folder).
    /// - Throws: `SafeTensorsError` naming the file and problem: an unreadable or invalid file, a
    ///   malformed index, a missing shard, a tensor present in two files, or a folder with no checkpoint.
    public init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SafeTensorsError.io(path: path, reason: "no such file or folder")
        }
        var indexPath: String?
        var files: [String] = [path]
        if isDirectory.boolValue {
            let listing = try Self.listFolder(path)
            let indexes = listing.filter { $0.hasSuffix(".safetensors.index.json") }
            guard indexes.count <= 1 else {
                throw SafeTensorsError.noCheckpointInFolder(
                    folder: path, reason: "several shard indexes (\(indexes.joined(separator: ", "))); open one of them")
            }
            indexPath = indexes.first.map { Self.join(path, $0) }
            files = listing.filter { $0.hasSuffix(".safetensors") }.map { Self.join(path, $0) }
            guard indexPath != nil || !files.isEmpty else {
                throw SafeTensorsError.noCheckpointInFolder(folder: path, reason: "no .safetensors file or shard index")
            }
        } else if path.hasSuffix(".json") {
            indexPath = path
        }

        if let indexPath {
            let index = try ShardIndex(path: indexPath)
            let indexFolder = Self.parentFolder(of: indexPath)
            var byTensor: [String: String] = [:]
            for (tensor, shard) in index.weightMap { byTensor[tensor] = Self.join(indexFolder, shard) }
            for shard in Set(index.weightMap.values).sorted()
            where !FileManager.default.fileExists(atPath: Self.join(indexFolder, shard)) {
                throw SafeTensorsError.missingShard(index: indexPath, shard: shard)
            }
            layout = .shardIndex(indexPath)
            folder = indexFolder
            filePaths = Set(byTensor.values).sorted()
            filePathByTensor = byTensor
            indexMetadata = index.metadata
            openFiles = [:]
        } else {
            var opened: [String: SafeTensorsFile] = [:]
            var byTensor: [String: String] = [:]
            for filePath in files {
                let file = try SafeTensorsFile(path: filePath)
                opened[filePath] = file
                for name in file.tensorNames {
                    if let first = byTensor.updateValue(filePath, forKey: name) {
                        throw SafeTensorsError.duplicateTensorAcrossFiles(tensor: name, first: first, second: filePath)
                    }
                }
            }
            layout = isDirectory.boolValue ? .folder : .singleFile
            folder = isDirectory.boolValue ? path : Self.parentFolder(of: path)
            filePaths = files
            filePathByTensor = byTensor
            indexMetadata = nil
            openFiles = opened
        }
        tensorNames = filePathByTensor.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Whether the checkpoint has a tensor called `name`.
    public func contains(_ name: String) -> Bool {
        filePathByTensor[name] != nil
    }

    /// The path of the file holding `name`.
    public func filePath(of name: String) throws -> String {
        guard let filePath = filePathByTensor[name] else { throw SafeTensorsError.tensorNotFound(source: path, tensor: name) }
        return filePath
    }

    /// The opened file holding `name` (mapping its shard on first use).
    public func file(containing name: String) throws -> SafeTensorsFile {
        let file = try open(filePath(of: name))
        if case let .shardIndex(indexPath) = layout, file.header.info(named: name) == nil {
            throw SafeTensorsError.tensorMissingFromShard(index: indexPath, shard: file.path, tensor: name)
        }
        return file
    }

    /// Every file of the checkpoint, opened, in `filePaths` order.
    public func files() throws -> [SafeTensorsFile] {
        try filePaths.map(open)
    }

    /// The header entry of `name`.
    public func info(_ name: String) throws -> TensorInfo {
        try file(containing: name).info(name)
    }

    /// The tensor's bytes as a view into its file (any format dtype).
    public func raw(_ name: String) throws -> RawTensor {
        try file(containing: name).raw(name)
    }

    /// The tensor as an engine `Tensor` viewing its file (no copy).
    public func tensor(_ name: String) throws -> Tensor {
        try file(containing: name).tensor(name)
    }

    private func open(_ filePath: String) throws -> SafeTensorsFile {
        lock.lock()
        defer { lock.unlock() }
        if let file = openFiles[filePath] { return file }
        let file = try SafeTensorsFile(path: filePath)
        openFiles[filePath] = file
        return file
    }

    private static func listFolder(_ folder: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw SafeTensorsError.io(path: folder, reason: "cannot list the folder")
        }
    }

    private static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    private static func parentFolder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
