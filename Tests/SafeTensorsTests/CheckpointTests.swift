import NunchakuCore
import Testing
@testable import SafeTensors

/// A small safetensors file holding `names`, each a one-element F32 tensor equal to its position.
private func smallFile(_ names: [String], metadata: [String: String]? = nil) throws -> [UInt8] {
    var writer = SafeTensorsWriter(metadata: metadata)
    for (index, name) in names.enumerated() { try writer.add(name, Tensor([Float(index)], shape: [1])) }
    return try writer.serialized()
}

private func index(_ weightMap: [(String, String)], extra: String = "") -> [UInt8] {
    let map = weightMap.map { "\"\($0.0)\": \"\($0.1)\"" }.joined(separator: ", ")
    return Array("{\(extra)\"weight_map\": {\(map)}}".utf8)
}

@Test func singleFileCheckpointListsItsTensors() throws {
    let folder = try TemporaryFolder()
    let path = try folder.write("model.safetensors", smallFile(["b", "a"]))
    let checkpoint = try SafeTensorsCheckpoint(path: path)
    #expect(checkpoint.layout == .singleFile)
    #expect(checkpoint.folder == folder.path)
    #expect(checkpoint.filePaths == [path])
    #expect(checkpoint.tensorNames == ["a", "b"])
    #expect(try checkpoint.tensor("b").floats() == [0])
    #expect(try checkpoint.tensor("b").storage.isMapped)
    #expect(throws: SafeTensorsError.tensorNotFound(source: path, tensor: "c")) { try checkpoint.tensor("c") }
}

@Test func folderCheckpointJoinsItsFiles() throws {
    let folder = try TemporaryFolder()
    try folder.write("transformer_blocks.safetensors", smallFile(["transformer_blocks.0.qweight"]))
    try folder.write("unquantized_layers.safetensors", smallFile(["proj_out.weight", "x_embedder.weight"]))
    try folder.write("notes.txt", Array("ignored".utf8))
    let checkpoint = try SafeTensorsCheckpoint(path: folder.path)
    #expect(checkpoint.layout == .folder)
    #expect(checkpoint.tensorNames == ["proj_out.weight", "transformer_blocks.0.qweight", "x_embedder.weight"])
    #expect(try checkpoint.filePath(of: "proj_out.weight") == folder.file("unquantized_layers.safetensors"))
    #expect(try checkpoint.tensor("x_embedder.weight").floats() == [1])
}

@Test func folderCheckpointRejectsATensorInTwoFiles() throws {
    let folder = try TemporaryFolder()
    try folder.write("a.safetensors", smallFile(["shared"]))
    try folder.write("b.safetensors", smallFile(["shared"]))
    #expect(throws: SafeTensorsError.duplicateTensorAcrossFiles(
        tensor: "shared", first: folder.file("a.safetensors"), second: folder.file("b.safetensors"))) {
        try SafeTensorsCheckpoint(path: folder.path)
    }
}

@Test func folderWithoutCheckpointIsAnError() throws {
    let folder = try TemporaryFolder()
    try folder.write("config.json", Array("{}".utf8))
    #expect(throws: SafeTensorsError.noCheckpointInFolder(folder: folder.path, reason: "no .safetensors file or shard index")) {
        try SafeTensorsCheckpoint(path: folder.path)
    }
    #expect(throws: SafeTensorsError.io(path: folder.file("nothing"), reason: "no such file or folder")) {
        try SafeTensorsCheckpoint(path: folder.file("nothing"))
    }
}

@Test func shardIndexOpensShardsOnlyWhenTheirTensorsAreRead() throws {
    let folder = try TemporaryFolder()
    try folder.write("model-00001-of-00002.safetensors", smallFile(["a", "b"]))
    try folder.write("model-00002-of-00002.safetensors", Array("not a safetensors file".utf8))
    let indexPath = try folder.write("model.safetensors.index.json", index(
        [("a", "model-00001-of-00002.safetensors"), ("b", "model-00001-of-00002.safetensors"),
         ("z", "model-00002-of-00002.safetensors")],
        extra: "\"metadata\": {\"total_size\": 8}, "))
    for path in [indexPath, folder.path] {
        let checkpoint = try SafeTensorsCheckpoint(path: path)
        #expect(checkpoint.layout == .shardIndex(indexPath))
        #expect(checkpoint.tensorNames == ["a", "b", "z"])
        #expect(checkpoint.indexMetadata == .object([JSONMember("total_size", .integer(8))]))
        #expect(try checkpoint.tensor("b").floats() == [1])
        #expect(throws: SafeTensorsError.self) { try checkpoint.tensor("z") }
        #expect(throws: SafeTensorsError.self) { try checkpoint.files() }
    }
}

@Test func shardIndexErrorsNameTheIndexAndShard() throws {
    let folder = try TemporaryFolder()
    let shard = try folder.write("one.safetensors", smallFile(["a"]))
    let missing = try folder.write("missing.safetensors.index.json", index([("a", "one.safetensors"), ("b", "two.safetensors")]))
    #expect(throws: SafeTensorsError.missingShard(index: missing, shard: "two.safetensors")) {
        try SafeTensorsCheckpoint(path: missing)
    }
    let wrong = try folder.write("wrong.safetensors.index.json", index([("a", "one.safetensors"), ("c", "one.safetensors")]))
    let checkpoint = try SafeTensorsCheckpoint(path: wrong)
    #expect(try checkpoint.tensor("a").floats() == [0])
    #expect(throws: SafeTensorsError.tensorMissingFromShard(index: wrong, shard: shard, tensor: "c")) { try checkpoint.info("c") }
}

@Test(arguments: [
    ("[]", "expected a JSON object, found an array"),
    ("{}", "missing \"weight_map\" object"),
    ("{\"weight_map\": {\"a\": 1}}", "weight_map entry \"a\" must be a file name, found a number"),
    ("{\"weight_map\": {\"a\": \"../outside.safetensors\"}}", "shard \"../outside.safetensors\" must be a relative path inside the index's folder"),
    ("{\"weight_map\": {\"a\": \"/abs.safetensors\"}}", "shard \"/abs.safetensors\" must be a relative path inside the index's folder"),
    ("{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}", "not valid JSON: byte 26: duplicate key \"a\""),
])
func malformedShardIndexesAreRejected(text: String, reason: String) throws {
    let folder = try TemporaryFolder()
    let path = try folder.write("m.safetensors.index.json", Array(text.utf8))
    #expect(throws: SafeTensorsError.invalidIndex(file: path, reason: reason)) { try SafeTensorsCheckpoint(path: path) }
}

@Test func folderWithTwoIndexesIsAmbiguous() throws {
    let folder = try TemporaryFolder()
    try folder.write("a.safetensors.index.json", index([]))
    try folder.write("b.safetensors.index.json", index([]))
    #expect(throws: SafeTensorsError.noCheckpointInFolder(
        folder: folder.path, reason: "several shard indexes (a.safetensors.index.json, b.safetensors.index.json); open one of them")) {
        try SafeTensorsCheckpoint(path: folder.path)
    }
}
