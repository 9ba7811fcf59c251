import Foundation
import NunchakuCore
import SafeTensors
import Testing
@testable import Pipelines

/// Hand-computed cases and the errors for files this engine cannot or must not use.
struct TokenizerErrorTests {
    static let bpeModel = #"""
        {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "aa": 6, "<unk>": 7},
         "merges": ["a b", "ab c", "a a"], "unk_token": "<unk>"}
        """#

    static func tokenizer(normalizer: String = "null", preTokenizer: String = "null", model: String = bpeModel,
                          postProcessor: String = "null") throws -> Tokenizer {
        let text = """
            {"version": "1.0", "added_tokens": [], "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer),
             "post_processor": \(postProcessor), "decoder": null, "model": \(model)}
            """
        return try Tokenizer(json: try JSONValue.parse(Array(text.utf8)), source: "test.json")
    }

    /// The error `body` throws as a `NunchakuError`.
    static func error(_ body: () throws -> Void) -> NunchakuError? {
        do {
            try body()
            return nil
        } catch {
            return error as? NunchakuError
        }
    }

    @Test func bpeMergesByRankLeftmostFirst() throws {
        let tokenizer = try Self.tokenizer()
        #expect(try tokenizer.encode("abc") == [5])
        #expect(try tokenizer.encode("cab") == [2, 3])
        #expect(try tokenizer.encode("aaa") == [6, 0])
        #expect(try tokenizer.encode("axxb") == [0, 7, 7, 1])
        let reversed = try Self.tokenizer(model: Self.bpeModel.replacingOccurrences(of: #"["a b", "ab c", "a a"]"#,
                                                                                   with: #"[["b", "c"], ["a", "b"]]"#))
        #expect(try reversed.encode("abc") == [0, 4])
    }

    @Test func unigramPicksTheBestPathAndFusesUnknowns() throws {
        let model = #"""
            {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a", -1.0], ["b", -1.0], ["ab", -1.5]]}
            """#
        let tokenizer = try Self.tokenizer(model: model)
        #expect(try tokenizer.encode("ab") == [3])
        #expect(try tokenizer.encode("abx") == [3, 0])
        #expect(try tokenizer.encode("xyab") == [0, 3])
        #expect(try tokenizer.encode("xaby") == [0, 3, 0])
    }

    @Test func paddingAndTruncation() throws {
        let tokenizer = try Self.tokenizer(postProcessor: #"{"type": "BertProcessing", "sep": ["c", 2], "cls": ["b", 1]}"#)
        let right = try tokenizer.encode("aa", length: 5, padID: 9)
        #expect(right == PaddedTokens(ids: [1, 6, 2, 9, 9], attentionMask: [1, 1, 1, 0, 0]))
        let left = try tokenizer.encode("aa", length: 5, padID: 9, paddingSide: .left)
        #expect(left == PaddedTokens(ids: [9, 9, 1, 6, 2], attentionMask: [0, 0, 1, 1, 1]))
        #expect(try tokenizer.encode("abcabcabc", length: 4, padID: 9).ids == [1, 5, 5, 2])
        #expect(Self.error { _ = try tokenizer.encode("a", length: 1, padID: 9) }
            == .invalidArgument(context: "tokenizer encode", reason: "length 1 is shorter than the 2 special tokens"))
    }

    @Test func unsupportedComponentsAreNamed() {
        let normalizer = Self.error { _ = try Self.tokenizer(normalizer: #"{"type": "BertNormalizer"}"#) }
        #expect(normalizer?.description.contains(#"normalizer type "BertNormalizer" is not supported"#) == true)
        let nested = Self.error {
            _ = try Self.tokenizer(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Digits"}]}"#)
        }
        #expect(nested?.description.hasPrefix("test.json.pre_tokenizer.pretokenizers[1]: pre-tokenizer type \"Digits\"") == true)
        let model = Self.error { _ = try Self.tokenizer(model: #"{"type": "WordPiece", "vocab": {}}"#) }
        #expect(model?.description.contains(#"model type "WordPiece" is not supported"#) == true)
        let regex = Self.error {
            _ = try Self.tokenizer(preTokenizer: #"{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}"#)
        }
        #expect(regex?.description.contains(#"uses \w"#) == true)
    }

    @Test func malformedFilesAreRejected() {
        let merge = Self.error {
            _ = try Self.tokenizer(model: Self.bpeModel.replacingOccurrences(of: #""a a""#, with: #""a z""#))
        }
        #expect(merge == .invalidArgument(context: "test.json.model.merges[2]", reason: "token \"z\" is not in the vocabulary"))
        let unknown = Self.error {
            _ = try Self.tokenizer(model: #"{"type": "Unigram", "unk_id": 5, "vocab": [["a", -1.0]]}"#)
        }
        #expect(unknown == .invalidArgument(context: "test.json.model.unk_id", reason: "5 is outside the 1-piece vocabulary"))
        let charsmap = Self.error {
            _ = try Self.tokenizer(normalizer: #"{"type": "Precompiled", "precompiled_charsmap": "not base64!"}"#)
        }
        #expect(charsmap == .invalidArgument(context: "test.json.normalizer.precompiled_charsmap", reason: "not valid base64"))
        let missingModel = Self.error {
            _ = try Tokenizer(json: try JSONValue.parse(Array(#"{"normalizer": null}"#.utf8)), source: "x.json")
        }
        #expect(missingModel == .invalidArgument(context: "x.json.model", reason: "missing; expected an object"))
    }

    @Test func corruptCharsmapFailsWhenUsed() throws {
        // A trie of one unit whose offset points far outside the array.
        let units: [UInt8] = [4, 0, 0, 0] + [0x00, 0xFC, 0xFF, 0x00]
        let normalizer = try PrecompiledNormalizer(bytes: units, location: "charsmap")
        var piece = TextPiece("a".scalarArray, startsAtInputStart: true)
        #expect(throws: NunchakuError.self) { try normalizer.normalize(&piece) }
    }
}
