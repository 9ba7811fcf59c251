/// A parsed `*.safetensors.index.json`: which shard file holds each tensor.
struct ShardIndex {
    /// Tensor name → shard file name (relative to the index's folder).
    let weightMap: [String: String]
    /// The index's `metadata` member (e.g. `total_size`), if any.
    let metadata: JSONValue?

    /// Reads and validates the index at `path`.
    init(path: String) throws {
        let text = try FileContents.read(path)
        let json: JSONValue
        do {
            json = try JSONValue.parse(text)
        } catch {
            throw SafeTensorsError.invalidIndex(file: path, reason: "not valid JSON: \(error)")
        }
        guard json.objectMembers != nil else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "expected a JSON object, found \(json.kindDescription)")
        }
        guard let mapMembers = json["weight_map"]?.objectMembers else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "missing \"weight_map\" object")
        }
        var weightMap: [String: String] = [:]
        for member in mapMembers {
            guard let shard = member.value.stringValue else {
                throw SafeTensorsError.invalidIndex(
                    file: path, reason: "weight_map entry \(quoted(member.key)) must be a file name, found \(member.value.kindDescription)")
            }
            guard Self.isPlainRelativePath(shard) else {
                throw SafeTensorsError.invalidIndex(
                    file: path, reason: "shard \(quoted(shard)) must be a relative path inside the index's folder")
            }
            guard weightMap.updateValue(shard, forKey: member.key) == nil else {
                throw SafeTensorsError.invalidIndex(file: path, reason: "tensor \(quoted(member.key)) is listed twice")
            }
        }
        self.weightMap = weightMap
        self.metadata = json["metadata"]
    }

    /// True for a non-empty relative path with no `..` component (so shards stay inside the folder).
    private static func isPlainRelativePath(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.split(separator: "/").contains("..")
    }
}
