/// A labelled line of a report (`format`, `precision`, …) supplied by whoever knows the checkpoint's format.
public struct ReportField: Sendable, Equatable {
    public let label: String
    public let value: String

    public init(_ label: String, _ value: String) {
        self.label = label
        self.value = value
    }
}

/// One file of a checkpoint as a report shows it.
public struct ReportedFile: Sendable, Equatable {
    public let path: String
    public let byteCount: Int
    public let tensorCount: Int
    public let metadata: [String: String]?
}

/// What `nunchaku inspect` prints: where the checkpoint is, its format, its metadata and its
/// tensors, as aligned text for people or as JSON for programs.
public struct CheckpointReport: Sendable {
    public let path: String
    public let layout: SafeTensorsCheckpoint.Layout
    public let files: [ReportedFile]
    public let indexMetadata: JSONValue?
    public let inventory: CheckpointInventory
    /// Lines describing the format (from format detection), shown under the path.
    public let formatFields: [ReportField]
    /// The same, machine-readable.
    public let formatJSON: JSONValue

    /// Metadata values longer than this are cut in the text summary (shown whole with `listAll`).
    static let metadataPreviewLength = 96

    /// Gathers the report for `checkpoint` (opening all of its files).
    public init(checkpoint: SafeTensorsCheckpoint, formatFields: [ReportField], formatJSON: JSONValue) throws {
        let opened = try checkpoint.files()
        path = checkpoint.path
        layout = checkpoint.layout
        files = opened.map {
            ReportedFile(path: $0.path, byteCount: $0.fileSize, tensorCount: $0.tensorInfos.count, metadata: $0.metadata)
        }
        indexMetadata = checkpoint.indexMetadata
        inventory = CheckpointInventory(entries: opened.flatMap { file in
            file.tensorInfos.map { CheckpointEntry(info: $0, file: file.path) }
        })
        self.formatFields = formatFields
        self.formatJSON = formatJSON
    }

    // MARK: Text

    /// The report as text. With `listAll`, every tensor is listed and metadata values are shown whole;
    /// otherwise tensors are summarised per module, repeated blocks folded into one line.
    public func text(listAll: Bool) -> String {
        var lines = [path]
        let fields = [ReportField("layout", layoutDescription)] + formatFields + [
            ReportField("tensors", "\(TextFormatting.grouped(inventory.tensorCount)) (\(TextFormatting.byteCount(inventory.byteCount)))"),
            ReportField("dtypes", inventory.dtypeTotals.map {
                "\($0.dtype): \(TextFormatting.grouped($0.tensorCount)) (\(TextFormatting.byteCount($0.byteCount)))"
            }.joined(separator: ", ")),
        ]
        lines += TextFormatting.table(fields.map { [$0.label, $0.value] }, indent: 2)
        let limit = listAll ? nil : Self.metadataPreviewLength
        let filesWithMetadata = files.filter { !($0.metadata ?? [:]).isEmpty }
        if filesWithMetadata.isEmpty { lines += ["", "metadata", "  (none)"] }
        for file in filesWithMetadata {
            let metadata = file.metadata ?? [:]
            lines.append("")
            lines.append(files.count == 1 ? "metadata" : "metadata of \(fileName(file.path))")
            lines += TextFormatting.table(
                metadata.keys.sorted().map { [$0, TextFormatting.singleLine(metadata[$0]!, limit: limit)] }, indent: 2)
        }
        if let indexMetadata {
            lines += ["", "index metadata", "  " + TextFormatting.singleLine(indexMetadata.serialized(), limit: limit)]
        }
        lines.append("")
        lines += listAll ? tensorListing() : moduleSummary()
        return lines.joined(separator: "\n") + "\n"
    }

    private var layoutDescription: String {
        let size = TextFormatting.byteCount(files.reduce(0) { $0 + $1.byteCount })
        switch layout {
        case .singleFile:
            return "single file (\(size))"
        case let .shardIndex(index):
            return "\(files.count) shards listed by \(fileName(index)) (\(size))"
        case .folder:
            return "folder of \(files.count) files: \(files.map { fileName($0.path) }.joined(separator: ", ")) (\(size))"
        }
    }

    private func moduleSummary() -> [String] {
        var rows: [[String]] = [["module / tensor", "count", "dtype", "shape", "size"]]
        var sectionRows: Set<Int> = []
        for section in inventory.sections {
            sectionRows.insert(rows.count)
            let blocks = section.blockCount.map { " (\($0) blocks)" } ?? ""
            rows.append([section.name + blocks, TextFormatting.grouped(section.tensorCount), "", "",
                         TextFormatting.byteCount(section.byteCount)])
            for group in section.groups {
                rows.append([
                    "  " + group.pattern, TextFormatting.grouped(group.entries.count),
                    group.dtypes.map(\.name).joined(separator: ","),
                    group.shape.map(TextFormatting.shape) ?? "(varies)", TextFormatting.byteCount(group.byteCount),
                ])
            }
        }
        let table = TextFormatting.table(rows, rightAligned: [1, 4], indent: 2)
        return table.enumerated().flatMap { index, line in
            sectionRows.contains(index) && index > 1 ? ["", line] : [line]
        }
    }

    private func tensorListing() -> [String] {
        let showFile = files.count > 1
        var rows: [[String]] = [["tensor", "dtype", "shape", "size"] + (showFile ? ["file"] : [])]
        for entry in inventory.entries {
            rows.append([
                entry.info.name, entry.info.dtype.name, TextFormatting.shape(entry.info.shape),
                TextFormatting.byteCount(entry.info.byteCount),
            ] + (showFile ? [fileName(entry.file)] : []))
        }
        return TextFormatting.table(rows, rightAligned: [3], indent: 2)
    }

    private func fileName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    // MARK: JSON

    /// The whole report as JSON: every file with its metadata, the format, totals, module groups
    /// and every tensor.
    public var json: JSONValue {
        let layoutValue: JSONValue = switch layout {
        case .singleFile: .object([JSONMember("kind", .string("single_file"))])
        case let .shardIndex(index): .object([JSONMember("kind", .string("shard_index")), JSONMember("index", .string(index))])
        case .folder: .object([JSONMember("kind", .string("folder"))])
        }
        return .object([
            JSONMember("path", .string(path)),
            JSONMember("layout", layoutValue),
            JSONMember("format", formatJSON),
            JSONMember("files", .array(files.map { file in
                .object([
                    JSONMember("path", .string(file.path)),
                    JSONMember("bytes", .integer(file.byteCount)),
                    JSONMember("tensors", .integer(file.tensorCount)),
                    JSONMember("metadata", file.metadata.map { metadata in
                        .object(metadata.keys.sorted().map { JSONMember($0, .string(metadata[$0]!)) })
                    } ?? .null),
                ])
            })),
            JSONMember("index_metadata", indexMetadata ?? .null),
            JSONMember("totals", .object([
                JSONMember("tensors", .integer(inventory.tensorCount)),
                JSONMember("bytes", .integer(inventory.byteCount)),
            ])),
            JSONMember("dtypes", .array(inventory.dtypeTotals.map {
                .object([
                    JSONMember("dtype", .string($0.dtype.name)),
                    JSONMember("tensors", .integer($0.tensorCount)),
                    JSONMember("bytes", .integer($0.byteCount)),
                ])
            })),
            JSONMember("modules", .array(inventory.sections.map(sectionJSON))),
            JSONMember("tensors", .array(inventory.entries.map {
                .object([
                    JSONMember("name", .string($0.info.name)),
                    JSONMember("dtype", .string($0.info.dtype.name)),
                    JSONMember("shape", .array($0.info.shape.map { .integer($0) })),
                    JSONMember("bytes", .integer($0.info.byteCount)),
                    JSONMember("file", .string($0.file)),
                ])
            })),
        ])
    }

    private func sectionJSON(_ section: ModuleSection) -> JSONValue {
        .object([
            JSONMember("name", .string(section.name)),
            JSONMember("blocks", section.blockCount.map { .integer($0) } ?? .null),
            JSONMember("tensors", .integer(section.tensorCount)),
            JSONMember("bytes", .integer(section.byteCount)),
            JSONMember("groups", .array(section.groups.map { group in
                .object([
                    JSONMember("pattern", .string(group.pattern)),
                    JSONMember("count", .integer(group.entries.count)),
                    JSONMember("dtypes", .array(group.dtypes.map { .string($0.name) })),
                    JSONMember("shape", group.shape.map { .array($0.map { .integer($0) }) } ?? .null),
                    JSONMember("bytes", .integer(group.byteCount)),
                ])
            })),
        ])
    }
}
