import NunchakuCore
import Testing
@testable import SafeTensors

private func entry(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int], file: String = "f") -> CheckpointEntry {
    guard case let .bytes(count) = dtype.sizing(forShape: shape) else { fatalError("test shape must size to bytes") }
    return CheckpointEntry(info: TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: 0..<count), file: file)
}

@Test(arguments: [
    ("transformer_blocks.12.attn.to_q.weight", "transformer_blocks.*.attn.to_q.weight"),
    ("blocks.3.ff.net.0.proj.bias", "blocks.*.ff.net.*.proj.bias"),
    ("lora_unet_double_blocks_3_img_attn_proj.lora_down.weight", "lora_unet_double_blocks_*_img_attn_proj.lora_down.weight"),
    ("norm1.linear.weight", "norm1.linear.weight"),
    ("mlp_fc2.wscales", "mlp_fc2.wscales"),
    ("0", "*"),
    ("t5xxl.layer_10x", "t5xxl.layer_10x"),
])
func patternsFoldIndexComponents(name: String, pattern: String) {
    #expect(CheckpointInventory.pattern(for: name) == pattern)
}

@Test func naturalOrderComparesIndicesAsNumbers() {
    let names = ["b.10.w", "b.2.w", "b.2", "a", "b.x", "b.02.w", "b.1.w"]
    #expect(names.sorted(by: CheckpointInventory.naturallyPrecedes) == ["a", "b.1.w", "b.02.w", "b.2", "b.2.w", "b.10.w", "b.x"])
}

@Test func inventoryGroupsBlocksAndTotalsDTypes() {
    let inventory = CheckpointInventory(entries: [
        entry("blocks.1.w", .bf16, [4, 4]),
        entry("blocks.0.w", .bf16, [4, 4]),
        entry("blocks.10.w", .bf16, [4, 8]),
        entry("blocks.0.s", .f8e4m3, [16]),
        entry("proj.weight", .f32, [2]),
        entry("scale", .f32, []),
    ])
    #expect(inventory.entries.map(\.info.name) == ["blocks.0.s", "blocks.0.w", "blocks.1.w", "blocks.10.w", "proj.weight", "scale"])
    #expect(inventory.tensorCount == 6)
    #expect(inventory.byteCount == 32 + 32 + 64 + 16 + 8 + 4)
    #expect(inventory.sections.map(\.name) == ["blocks", "proj", "scale"])
    let blocks = inventory.sections[0]
    #expect(blocks.blockCount == 3)
    #expect(blocks.tensorCount == 4)
    #expect(blocks.groups.map(\.pattern) == ["blocks.*.s", "blocks.*.w"])
    #expect(blocks.groups[1].shape == nil)
    #expect(blocks.groups[1].entries.count == 3)
    #expect(blocks.groups[0].shape == [16])
    #expect(inventory.sections[1].blockCount == nil)
    #expect(inventory.dtypeTotals == [
        DTypeTotal(dtype: .bf16, tensorCount: 3, byteCount: 128),
        DTypeTotal(dtype: .f8e4m3, tensorCount: 1, byteCount: 16),
        DTypeTotal(dtype: .f32, tensorCount: 2, byteCount: 12),
    ])
}

@Test func byteCountsReadLikeAPerson() {
    #expect(TextFormatting.byteCount(0) == "0 B")
    #expect(TextFormatting.byteCount(1023) == "1023 B")
    #expect(TextFormatting.byteCount(1024) == "1.00 KiB")
    #expect(TextFormatting.byteCount(1536) == "1.50 KiB")
    #expect(TextFormatting.byteCount(10 * 1024 * 1024) == "10.0 MiB")
    #expect(TextFormatting.byteCount(345 * 1024 * 1024) == "345 MiB")
    #expect(TextFormatting.byteCount(6_775_000_000) == "6.31 GiB")
    #expect(TextFormatting.grouped(1_234_567) == "1,234,567")
    #expect(TextFormatting.grouped(999) == "999")
    #expect(TextFormatting.grouped(-1000) == "-1,000")
    #expect(TextFormatting.fixed(0.125, decimals: 2) == "0.13")
    #expect(TextFormatting.fixed(-2.5, decimals: 0) == "-3")
    #expect(TextFormatting.singleLine("a\nb\tc", limit: nil) == "a b c")
    #expect(TextFormatting.singleLine("abcdef", limit: 3) == "abc… (6 characters)")
}

@Test func tablesAlignColumns() {
    let lines = TextFormatting.table([["name", "n"], ["long name", "10"], ["x", "2"]], rightAligned: [1], indent: 2)
    #expect(lines == ["  name        n", "  long name  10", "  x           2"])
}

@Test func reportShowsFormatMetadataAndTensors() throws {
    let folder = try TemporaryFolder()
    var writer = SafeTensorsWriter(metadata: ["model_class": "Demo", "config": String(repeating: "x", count: 200)])
    for block in 0..<3 { try writer.add("blocks.\(block).w", Tensor(zeros: [2, 4], dtype: .bf16)) }
    try writer.add("proj_out.weight", Tensor(zeros: [4], dtype: .f32))
    let path = folder.file("demo.safetensors")
    try writer.write(to: path)
    let checkpoint = try SafeTensorsCheckpoint(path: path)
    let report = try CheckpointReport(
        checkpoint: checkpoint, formatFields: [ReportField("format", "demo format")],
        formatJSON: .object([JSONMember("kind", .string("demo"))]))

    let summary = report.text(listAll: false)
    #expect(summary.hasPrefix(path + "\n"))
    #expect(summary.contains("  format   demo format\n"))
    #expect(summary.contains("  tensors  4 (64 B)\n"))
    #expect(summary.contains("  dtypes   BF16: 3 (48 B), F32: 1 (16 B)\n"))
    #expect(summary.contains("model_class  Demo"))
    #expect(summary.contains("… (200 characters)"))
    #expect(summary.contains("blocks (3 blocks)"))
    #expect(summary.contains("\n    blocks.*.w           3  BF16   [2, 4]  48 B\n"))
    #expect(!summary.contains("blocks.1.w"))

    let listing = report.text(listAll: true)
    #expect(listing.contains("  blocks.1.w       BF16   [2, 4]  16 B"))
    #expect(listing.contains(String(repeating: "x", count: 200)))

    let json = try JSONValue.parse(Array(report.json.serialized(pretty: true).utf8))
    #expect(json["format"]?["kind"]?.stringValue == "demo")
    #expect(json["totals"]?["tensors"] == .integer(4))
    let files = try #require(json["files"]?.arrayElements)
    #expect(files.first?["metadata"]?["model_class"]?.stringValue == "Demo")
    let tensors = try #require(json["tensors"]?.arrayElements)
    try #require(tensors.count == 4)
    #expect(tensors[1]["name"]?.stringValue == "blocks.1.w")
    #expect(tensors[1]["shape"] == .array([.integer(2), .integer(4)]))
    #expect(json["modules"]?.arrayElements?.first?["blocks"] == .integer(3))
}
