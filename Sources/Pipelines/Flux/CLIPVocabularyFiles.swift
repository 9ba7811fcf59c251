import Foundation
import NunchakuCore
import SafeTensors

/// CLIPTokenizer's vocabulary files, `vocab.json` (token → id) and `merges.txt` (one `a b` merge per line after a
/// `#version` header), which FLUX repos ship in `tokenizer/` instead of a tokenizer.json.
///
/// transformers 5 builds the same CLIPTokenizer from them as from a tokenizer.json: it takes only the vocabulary
/// and the merges and builds the rest itself (checked: equal ids on the tokenizer test corpus), with the
/// configuration's special tokens as non-normalized special added tokens. So they are turned into the tokenizer.json
/// model that `Tokenizer(json:configuration:)` rebuilds.
enum CLIPVocabularyFiles {
    /// Whether `folder` holds both files.
    static func arePresent(in folder: String) -> Bool {
        let manager = FileManager.default
        return manager.isReadableFile(atPath: (folder as NSString).appendingPathComponent("vocab.json"))
            && manager.isReadableFile(atPath: (folder as NSString).appendingPathComponent("merges.txt"))
    }

    /// The CLIP tokenizer of `folder`'s `vocab.json`, `merges.txt` and `tokenizer_config.json`.
    /// - Throws: `NunchakuError` naming the file that cannot be read or parsed, or a special token missing from the
    ///   vocabulary.
    static func load(folder: String) throws -> (tokenizer: Tokenizer, configuration: TokenizerConfiguration) {
        let vocabularyPath = (folder as NSString).appendingPathComponent("vocab.json")
        let mergesPath = (folder as NSString).appendingPathComponent("merges.txt")
        let configurationPath = (folder as NSString).appendingPathComponent("tokenizer_config.json")
        var configuration = try TokenizerConfiguration(contentsOfFile: configurationPath)
        configuration.tokenizerClass = TransformersTokenizerClass.clip.rawValue
        let vocabulary = try readJSONFile(vocabularyPath)
        guard let entries = vocabulary.objectMembers else {
            throw NunchakuError.invalidArgument(context: vocabularyPath, reason: "expected an object of token → id")
        }
        let merges = try mergeLines(mergesPath)
        let ids = Dictionary(entries.compactMap { member in member.value.intValue.map { (member.key, $0) } },
                             uniquingKeysWith: { first, _ in first })
        let specials = [configuration.beginToken, configuration.endToken, configuration.unknownToken, configuration.padToken]
        var seen = Set<String>()
        let addedTokens: [JSONValue] = try specials.compactMap { $0 }.filter { seen.insert($0).inserted }.map { token in
            guard let id = ids[token] else {
                throw NunchakuError.invalidArgument(context: vocabularyPath, reason: "special token \"\(token)\" of \(configurationPath) is not in the vocabulary")
            }
            return .object([JSONMember("id", .integer(id)), JSONMember("content", .string(token)),
                            JSONMember("single_word", .bool(false)), JSONMember("lstrip", .bool(false)),
                            JSONMember("rstrip", .bool(false)), JSONMember("normalized", .bool(false)),
                            JSONMember("special", .bool(true))])
        }
        let model = JSONValue.object([JSONMember("type", .string("BPE")), JSONMember("vocab", vocabulary),
                                      JSONMember("merges", .array(merges.map { .string($0) }))])
        let json = JSONValue.object([JSONMember("added_tokens", .array(addedTokens)), JSONMember("model", model)])
        let tokenizer = try Tokenizer(json: json, configuration: configuration, source: "\(vocabularyPath) + merges.txt")
        return (tokenizer, configuration)
    }

    /// The merges of `merges.txt`: every non-empty line except the `#version` header.
    static func mergeLines(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw NunchakuError.io(path: path, reason: "cannot be read as UTF-8 text")
        }
        return text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { String($0) }
            .filter { !$0.hasPrefix("#version") && !$0.isEmpty }
    }
}
