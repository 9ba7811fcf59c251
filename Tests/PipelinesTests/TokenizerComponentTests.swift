import NunchakuCore
import SafeTensors
import Testing
@testable import Pipelines

/// Every supported component against `tokenizers`: variants of the trained fixtures with other normalizers,
/// pre-tokenizers, models options, post-processors and decoders swapped in (variants.json).
struct TokenizerComponentTests {
    @Test func variantsMatchTokenizers() throws {
        let fixture = try FixtureFiles.json("tokenizers/variants.json")
        let corpus = try #require(fixture["corpus"]?.arrayElements).compactMap { $0.stringValue }
        let variants = try #require(fixture["variants"]?.arrayElements)
        #expect(variants.count == 6)
        for variant in variants {
            let name = try #require(variant["name"]?.stringValue)
            let tokenizer = try Tokenizer(json: try #require(variant["tokenizer"]), source: name)
            let cases = try #require(variant["cases"]?.arrayElements)
            try #require(cases.count == corpus.count)
            for (text, expected) in zip(corpus, cases) {
                let ids = try tokenizer.encode(text)
                #expect(ids == expected["ids"]?.intArray, "\(name): \(text.debugDescription)")
                #expect(tokenizer.decode(ids) == expected["decoded"]?.stringValue, "\(name) decode: \(text.debugDescription)")
            }
        }
    }
}
