import NunchakuCore
import SafeTensors

/// The `post_processor` of a tokenizer.json file: adds the special tokens around a single sequence.
protocol PostProcessor: Sendable {
    /// How many ids `process` adds when special tokens are requested (truncation leaves room for them).
    var addedTokenCount: Int { get }
    func process(_ ids: [Int]) -> [Int]
}

/// Builds the post-processor a tokenizer.json `post_processor` object describes.
func makePostProcessor(_ object: TokenizerJSONObject) throws -> any PostProcessor {
    switch try object.type {
    case "TemplateProcessing":
        return try TemplatePostProcessor(object)
    case "RobertaProcessing", "BertProcessing":
        return SurroundingPostProcessor(first: try specialTokenID(object, "cls"), last: try specialTokenID(object, "sep"))
    case "ByteLevel":
        // Only adjusts offsets, which this engine does not track.
        return PostProcessorSequence(steps: [])
    case "Sequence":
        return PostProcessorSequence(steps: try object.objects("processors").map(makePostProcessor))
    case let other:
        throw object.unsupportedType(other, kind: "post-processor", supported: [
            "TemplateProcessing", "RobertaProcessing", "BertProcessing", "ByteLevel", "Sequence",
        ])
    }
}

/// The id of a `[token, id]` member (`cls`, `sep`).
private func specialTokenID(_ object: TokenizerJSONObject, _ key: String) throws -> Int {
    let pair = try object.array(key)
    guard pair.count == 2, pair[0].stringValue != nil, let id = pair[1].intValue, id >= 0 else {
        throw object.invalid(key, "expected [token, id]")
    }
    return id
}

/// `cls A sep` (RoBERTa, BERT, CLIP).
struct SurroundingPostProcessor: PostProcessor {
    let first: Int
    let last: Int

    var addedTokenCount: Int { 2 }

    func process(_ ids: [Int]) -> [Int] { [first] + ids + [last] }
}

struct PostProcessorSequence: PostProcessor {
    let steps: [any PostProcessor]

    var addedTokenCount: Int { steps.reduce(0) { $0 + $1.addedTokenCount } }

    func process(_ ids: [Int]) -> [Int] { steps.reduce(ids) { $1.process($0) } }
}

/// `TemplateProcessing`: the `single` template, e.g. `$A </s>` (T5) or `<bos> $A` (Gemma).
struct TemplatePostProcessor: PostProcessor {
    enum Piece {
        case sequence
        case special([Int])
    }

    private let pieces: [Piece]

    init(pieces: [Piece]) {
        self.pieces = pieces
    }

    init(_ object: TokenizerJSONObject) throws {
        let specialTokens = try object.object("special_tokens")
        var idsByName: [String: [Int]] = [:]
        for member in specialTokens.members {
            let token = try TokenizerJSONObject(member.value, location: specialTokens.location(of: member.key))
            let ids = try token.array("ids").map { value -> Int in
                guard let id = value.intValue, id >= 0 else { throw token.invalid("ids", "expected non-negative integers") }
                return id
            }
            idsByName[member.key] = ids
        }
        pieces = try object.objects("single").map { entry in
            if let sequence = try entry.optionalObject("Sequence") {
                guard try sequence.string("id") == "A" else {
                    throw sequence.invalid("id", "a single-sequence template can only hold sequence A")
                }
                return .sequence
            }
            let special = try entry.object("SpecialToken")
            let name = try special.string("id")
            guard let ids = idsByName[name] else {
                throw special.invalid("id", "\"\(name)\" is not listed in special_tokens")
            }
            return .special(ids)
        }
    }

    var addedTokenCount: Int {
        pieces.reduce(0) { count, piece in
            if case let .special(ids) = piece { return count + ids.count }
            return count
        }
    }

    func process(_ ids: [Int]) -> [Int] {
        pieces.flatMap { piece -> [Int] in
            switch piece {
            case .sequence: ids
            case let .special(specialIDs): specialIDs
            }
        }
    }
}
