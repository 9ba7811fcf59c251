import NunchakuCore
import SafeTensors
import Testing
@testable import Pipelines

/// Ids against Python `tokenizers` / transformers on the hard-string corpus, for one synthetic tokenizer of each
/// family (fixtures: scripts/parity/pipeline_tokenizer_fixtures.py).
struct TokenizerParityTests {
    struct Reference {
        let tokenizer: Tokenizer
        let configuration: TokenizerConfiguration
        let corpus: [String]
        let cases: [JSONValue]
        let padID: Int
        let paddingSide: PaddingSide

        init(_ name: String) throws {
            tokenizer = try Tokenizer(contentsOfFile: FixtureFiles.path("tokenizers/\(name).tokenizer.json"))
            configuration = try TokenizerConfiguration(
                contentsOfFile: FixtureFiles.path("tokenizers/\(name).tokenizer_config.json"))
            corpus = try #require(try FixtureFiles.json("tokenizers/corpus.json").arrayElements?.compactMap(\.stringValue))
            let expected = try FixtureFiles.json("tokenizers/\(name).expected.json")
            cases = try #require(expected["cases"]?.arrayElements)
            padID = try #require(expected["pad_id"]?.intValue)
            paddingSide = try #require(PaddingSide(rawValue: expected["padding_side"]?.stringValue ?? ""))
            try #require(cases.count == corpus.count)
        }
    }

    @Test(arguments: ["clip", "t5", "qwen", "gemma"])
    func idsMatchTokenizers(name: String) throws {
        let reference = try Reference(name)
        for (text, expected) in zip(reference.corpus, reference.cases) {
            let ids = try reference.tokenizer.encode(text)
            #expect(ids == expected["ids"]?.intArray, "\(name): \(text.debugDescription.prefix(120))")
        }
    }

    @Test(arguments: ["clip", "t5", "qwen", "gemma"])
    func paddedIdsMatchTransformers(name: String) throws {
        let reference = try Reference(name)
        let padID = try #require(reference.configuration.padToken.flatMap(reference.tokenizer.id(forToken:)))
        #expect(padID == reference.padID)
        for (text, expected) in zip(reference.corpus, reference.cases) {
            let padded = try #require(expected["padded"]?.objectMembers)
            for member in padded {
                let length = try #require(Int(member.key))
                let encoded = try reference.tokenizer.encode(
                    text, length: length, padID: padID, paddingSide: reference.paddingSide)
                #expect(encoded.ids == member.value.intArray, "\(name) @\(length): \(text.debugDescription.prefix(120))")
                #expect(encoded.attentionMask.count == length)
            }
        }
    }

    /// The files as written (before transformers rebuilt their pipelines) with their tokenizer_config.json must
    /// give the ids transformers gives: `Tokenizer(json:configuration:)` redoes the CLIPTokenizer / T5Tokenizer
    /// rebuild. The files on their own tokenize differently (the fixture script checks that).
    @Test(arguments: ["clip", "t5"])
    func transformersRebuildOfOriginalFiles(name: String) throws {
        let reference = try Reference(name)
        let original = try FixtureFiles.json("tokenizers/\(name).original.tokenizer.json")
        let tokenizer = try Tokenizer(json: original, configuration: reference.configuration, source: name)
        for (text, expected) in zip(reference.corpus, reference.cases) {
            #expect(try tokenizer.encode(text) == expected["ids"]?.intArray, "\(name): \(text.debugDescription.prefix(120))")
            let ids = try #require(expected["ids"]?.intArray)
            #expect(tokenizer.decode(ids) == expected["decoded"]?.stringValue, "\(name) decode")
        }
        let verbatim = try Tokenizer(json: original, source: name)
        let differing = try zip(reference.corpus, reference.cases).filter { try verbatim.encode($0.0) != $0.1["ids"]?.intArray }
        #expect(!differing.isEmpty)
    }

    @Test(arguments: ["clip", "t5", "qwen", "gemma"])
    func decodingMatchesTokenizers(name: String) throws {
        let reference = try Reference(name)
        for (text, expected) in zip(reference.corpus, reference.cases) {
            let ids = try #require(expected["ids"]?.intArray)
            #expect(reference.tokenizer.decode(ids) == expected["decoded"]?.stringValue,
                    "\(name): \(text.debugDescription.prefix(120))")
        }
    }
}
