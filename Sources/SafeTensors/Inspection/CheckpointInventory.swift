/// One tensor of a checkpoint and the file that holds it.
public struct CheckpointEntry: Sendable, Equatable {
    public let info: TensorInfo
    /// The path of the file holding the tensor.
    public let file: String

    public init(info: TensorInfo, file: String) {
        self.info = info
        self.file = file
    }
}

/// Tensors whose names differ only in block indices (`blocks.0.attn.weight`, `blocks.1.attn.weight`, …).
public struct TensorGroup: Sendable, Equatable {
    /// The shared name with every index component written `*`.
    public let pattern: String
    public let entries: [CheckpointEntry]
    /// The distinct dtypes, in order of first appearance.
    public let dtypes: [SafeTensorsDType]
    /// The shape, when every member has the same one.
    public let shape: [Int]?
    public let byteCount: Int

    init(pattern: String, entries: [CheckpointEntry]) {
        self.pattern = pattern
        self.entries = entries
        var dtypes: [SafeTensorsDType] = []
        for entry in entries where !dtypes.contains(entry.info.dtype) { dtypes.append(entry.info.dtype) }
        self.dtypes = dtypes
        let firstShape = entries.first?.info.shape
        shape = entries.allSatisfy { $0.info.shape == firstShape } ? firstShape : nil
        byteCount = entries.reduce(0) { $0 + $1.info.byteCount }
    }
}

/// The tensors under one top-level module name (the part of the name before the first dot).
public struct ModuleSection: Sendable, Equatable {
    public let name: String
    public let groups: [TensorGroup]
    public let tensorCount: Int
    public let byteCount: Int
    /// The number of distinct block indices when the module is a numbered list (`blocks.0…`, `blocks.1…`).
    public let blockCount: Int?
}

/// Tensor count and bytes of one dtype.
public struct DTypeTotal: Sendable, Equatable {
    public let dtype: SafeTensorsDType
    public let tensorCount: Int
    public let byteCount: Int
}

/// A checkpoint's tensors summarised: grouped by module, repeated blocks folded together, totals per dtype.
public struct CheckpointInventory: Sendable, Equatable {
    /// Every tensor, in natural name order (numeric components compared as numbers).
    public let entries: [CheckpointEntry]
    public let sections: [ModuleSection]
    /// Totals per dtype, largest byte count first.
    public let dtypeTotals: [DTypeTotal]

    public var tensorCount: Int { entries.count }
    public var byteCount: Int { entries.reduce(0) { $0 + $1.info.byteCount } }

    /// Summarises `entries`.
    public init(entries: [CheckpointEntry]) {
        let sorted = entries.sorted { Self.naturallyPrecedes($0.info.name, $1.info.name) }
        self.entries = sorted
        sections = Self.sections(of: sorted)
        var totals: [SafeTensorsDType: (count: Int, bytes: Int)] = [:]
        for entry in sorted {
            totals[entry.info.dtype, default: (0, 0)].count += 1
            totals[entry.info.dtype, default: (0, 0)].bytes += entry.info.byteCount
        }
        dtypeTotals = totals.map { DTypeTotal(dtype: $0.key, tensorCount: $0.value.count, byteCount: $0.value.bytes) }
            .sorted { ($0.byteCount, $1.dtype.alignmentRank) > ($1.byteCount, $0.dtype.alignmentRank) }
    }

    /// Summarises every tensor of `checkpoint` (opening all of its files).
    public init(checkpoint: SafeTensorsCheckpoint) throws {
        let entries = try checkpoint.files().flatMap { file in
            file.tensorInfos.map { CheckpointEntry(info: $0, file: file.path) }
        }
        self.init(entries: entries)
    }

    /// `name` with every index component replaced by `*`. An index is a run of ASCII digits bounded by the
    /// start or end of the name, `.` or `_` (`blocks.3.ff.net.0.proj` → `blocks.*.ff.net.*.proj`,
    /// `lora_unet_blocks_3_attn` → `lora_unet_blocks_*_attn`; `norm1` and `fc2` are kept).
    public static func pattern(for name: String) -> String {
        let characters = Array(name)
        func isDigit(_ index: Int) -> Bool { characters[index].isASCII && characters[index].isNumber }
        func isSeparator(_ index: Int) -> Bool { characters[index] == "." || characters[index] == "_" }
        var output = ""
        var index = 0
        while index < characters.count {
            guard isDigit(index) else {
                output.append(characters[index])
                index += 1
                continue
            }
            var end = index
            while end < characters.count, isDigit(end) { end += 1 }
            let bounded = (index == 0 || isSeparator(index - 1)) && (end == characters.count || isSeparator(end))
            output += bounded ? "*" : String(characters[index..<end])
            index = end
        }
        return output
    }

    /// Orders names component by component (split at `.`): all-digit components compare as numbers
    /// and come before other components, which compare by UTF-8 bytes. So `blocks.2` precedes `blocks.10`.
    public static func naturallyPrecedes(_ left: String, _ right: String) -> Bool {
        let leftParts = left.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        let rightParts = right.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for (a, b) in zip(leftParts, rightParts) where !a.elementsEqual(b) {
            return componentPrecedes(Array(a), Array(b))
        }
        return leftParts.count < rightParts.count
    }

    /// A total order on name components: numbers (by value, then by spelling) before words (by bytes).
    private static func componentPrecedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        func isNumber(_ bytes: [UInt8]) -> Bool { !bytes.isEmpty && bytes.allSatisfy { (0x30...0x39).contains($0) } }
        switch (isNumber(a), isNumber(b)) {
        case (true, false): return true
        case (false, true): return false
        case (false, false): return a.lexicographicallyPrecedes(b)
        case (true, true):
            let x = a.drop { $0 == 0x30 }, y = b.drop { $0 == 0x30 }
            if x.count != y.count { return x.count < y.count }
            if !x.elementsEqual(y) { return x.lexicographicallyPrecedes(y) }
            return a.lexicographicallyPrecedes(b)
        }
    }

    private static func sections(of entries: [CheckpointEntry]) -> [ModuleSection] {
        var order: [String] = []
        var bySection: [String: [CheckpointEntry]] = [:]
        for entry in entries {
            let name = String(entry.info.name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0])
            if bySection[name] == nil { order.append(name) }
            bySection[name, default: []].append(entry)
        }
        return order.map { name in
            let members = bySection[name]!
            var groupOrder: [String] = []
            var byPattern: [String: [CheckpointEntry]] = [:]
            for entry in members {
                let pattern = pattern(for: entry.info.name)
                if byPattern[pattern] == nil { groupOrder.append(pattern) }
                byPattern[pattern, default: []].append(entry)
            }
            let indices = Set(members.compactMap { entry -> Int? in
                let parts = entry.info.name.split(separator: ".", omittingEmptySubsequences: false)
                return parts.count > 2 ? Int(parts[1]) : nil
            })
            return ModuleSection(
                name: name,
                groups: groupOrder.map { TensorGroup(pattern: $0, entries: byPattern[$0]!) },
                tensorCount: members.count,
                byteCount: members.reduce(0) { $0 + $1.info.byteCount },
                blockCount: indices.isEmpty ? nil : indices.count)
        }
    }
}
