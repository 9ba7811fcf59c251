import SafeTensors

/// The `quantization_config` of a diffusers Nunchaku-Lite folder (research/nunchaku-internals.md §1.6):
/// `{"quant_method": "nunchaku_lite", "compute_dtype": …, "svdq_w4a4": {"precision", "group_size", "rank", "targets"},
/// "awq_w4a16": {"precision", "group_size", "targets"}}`. Targets are module paths.
public struct LiteQuantizationConfig: Sendable, Equatable {
    /// The W4A4 section: precision ("int4", or "fp4"/"nvfp4" for NVFP4), group size, rank and module paths.
    public struct W4A4Section: Sendable, Equatable {
        public var precision: SVDQuantPrecision
        public var groupSize: Int
        public var rank: Int
        public var targets: [String]
    }

    public var computeDType: String?
    public var w4a4: W4A4Section?
    /// The AWQ targets (precision int4, group size 64: the only kind the kernel has).
    public var awqTargets: [String]

    public init(computeDType: String?, w4a4: W4A4Section?, awqTargets: [String]) {
        self.computeDType = computeDType
        self.w4a4 = w4a4
        self.awqTargets = awqTargets
    }

    /// Reads the config object; `source` names it in errors.
    /// - Throws: `SVDQuantCheckpointError.invalidConfig` for a missing or mistyped field, an unknown precision, or a
    ///   group size other than the precision's (64 INT4, 16 NVFP4; 64 for AWQ).
    public init(_ config: JSONValue, source: String) throws {
        func invalid(_ reason: String) -> SVDQuantCheckpointError { .invalidConfig(source: source, reason: reason) }
        func integer(_ section: JSONValue, _ field: String, _ path: String) throws -> Int {
            guard let value = section[field]?.intValue, value >= 0 else { throw invalid("\(path).\(field) must be a non-negative integer") }
            return value
        }
        func targets(_ section: JSONValue, _ path: String) throws -> [String] {
            guard let list = section["targets"]?.arrayElements, list.allSatisfy({ $0.stringValue != nil }) else {
                throw invalid("\(path).targets must be a list of module paths")
            }
            return list.compactMap(\.stringValue)
        }
        computeDType = config["compute_dtype"]?.stringValue
        if let section = config["svdq_w4a4"], section != .null {
            let precision: SVDQuantPrecision
            switch section["precision"]?.stringValue {
            case "int4": precision = .int4
            case "fp4", "nvfp4": precision = .nvfp4
            default: throw invalid("svdq_w4a4.precision must be \"int4\" or \"fp4\", found \(section["precision"]?.serialized() ?? "nothing")")
            }
            let groupSize = try integer(section, "group_size", "svdq_w4a4")
            guard groupSize == precision.groupSize else {
                throw invalid("svdq_w4a4.group_size is \(groupSize); \(precision) uses groups of \(precision.groupSize)")
            }
            w4a4 = W4A4Section(
                precision: precision, groupSize: groupSize, rank: try integer(section, "rank", "svdq_w4a4"),
                targets: try targets(section, "svdq_w4a4"))
        } else {
            w4a4 = nil
        }
        if let section = config["awq_w4a16"], section != .null {
            guard section["precision"]?.stringValue == "int4", section["group_size"]?.intValue == 64 else {
                throw invalid("awq_w4a16 must have precision \"int4\" and group_size 64 (the only AWQ kernel)")
            }
            awqTargets = try targets(section, "awq_w4a16")
        } else {
            awqTargets = []
        }
    }

    /// The config as JSON, with the section keys Nunchaku-Lite reads; NVFP4 is written as "fp4".
    public var jsonValue: JSONValue {
        var members = [JSONMember("quant_method", .string("nunchaku_lite"))]
        if let computeDType { members.append(JSONMember("compute_dtype", .string(computeDType))) }
        if let w4a4 {
            members.append(JSONMember("svdq_w4a4", .object([
                JSONMember("precision", .string(w4a4.precision == .int4 ? "int4" : "fp4")),
                JSONMember("group_size", .integer(w4a4.groupSize)),
                JSONMember("rank", .integer(w4a4.rank)),
                JSONMember("targets", .array(w4a4.targets.map { .string($0) })),
            ])))
        }
        if !awqTargets.isEmpty {
            members.append(JSONMember("awq_w4a16", .object([
                JSONMember("precision", .string("int4")), JSONMember("group_size", .integer(64)),
                JSONMember("targets", .array(awqTargets.map { .string($0) })),
            ])))
        }
        return .object(members)
    }
}

/// Nunchaku's `quantization_config` metadata text, as `nunchaku/merge_safetensors.py` writes it with Python's
/// `json.dumps` (research/nunchaku-internals.md §1.1b).
enum NunchakuQuantizationConfig {
    static func text(precision: SVDQuantPrecision, rank: Int) -> String {
        let group = precision.groupSize
        switch precision {
        case .int4:
            return #"{"method": "svdquant", "weight": {"dtype": "int4", "scale_dtype": null, "group_size": \#(group)}, "activation": {"dtype": "int4", "scale_dtype": null, "group_size": \#(group)}, "rank": \#(rank)}"#
        case .nvfp4:
            return #"{"method": "svdquant", "weight": {"dtype": "fp4_e2m1_all", "scale_dtype": [null, "fp8_e4m3_nan"], "group_size": \#(group)}, "activation": {"dtype": "fp4_e2m1_all", "scale_dtype": "fp8_e4m3_nan", "group_size": \#(group)}, "rank": \#(rank)}"#
        }
    }
}
