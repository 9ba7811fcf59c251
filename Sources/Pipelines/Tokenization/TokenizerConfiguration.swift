import NunchakuCore
import SafeTensors

/// The settings of a `tokenizer_config.json` that transformers reads besides tokenizer.json: padding, the special
/// tokens and the tokenizer class.
public struct TokenizerConfiguration: Sendable, Equatable {
    /// The padding token's text (`pad_token`, a string or an `{"content": …}` object), if set.
    public var padToken: String?
    /// `padding_side`, if set. When absent, transformers uses its tokenizer class's default (right for CLIP and
    /// T5, left for Gemma).
    public var paddingSide: PaddingSide?
    /// `model_max_length`, if set to a usable integer (some files hold a huge placeholder float).
    public var modelMaxLength: Int?
    /// `tokenizer_class`, e.g. `CLIPTokenizer`: transformers 5 builds some classes' pipelines itself.
    public var tokenizerClass: String?
    /// `bos_token`, `eos_token`, `unk_token`, if set.
    public var beginToken: String?
    public var endToken: String?
    public var unknownToken: String?

    public init(padToken: String? = nil, paddingSide: PaddingSide? = nil, modelMaxLength: Int? = nil,
                tokenizerClass: String? = nil, beginToken: String? = nil, endToken: String? = nil,
                unknownToken: String? = nil) {
        self.padToken = padToken
        self.paddingSide = paddingSide
        self.modelMaxLength = modelMaxLength
        self.tokenizerClass = tokenizerClass
        self.beginToken = beginToken
        self.endToken = endToken
        self.unknownToken = unknownToken
    }

    /// Reads the settings from a parsed tokenizer_config.json; `source` names the file in errors.
    public init(json: JSONValue, source: String = "tokenizer_config.json") throws {
        let root = try TokenizerJSONObject(json, location: source)
        /// A token setting: a string, an `{"content": …}` object (a serialized AddedToken), or absent.
        func token(_ key: String) throws -> String? {
            switch root[key] {
            case nil, .null?: return nil
            case let .string(text)?: return text
            case .object?: return try root.object(key).string("content")
            case let other?: throw root.invalid(key, "expected a string or an object, found \(other.kindDescription)")
            }
        }
        padToken = try token("pad_token")
        beginToken = try token("bos_token")
        endToken = try token("eos_token")
        unknownToken = try token("unk_token")
        tokenizerClass = try root.optionalString("tokenizer_class")
        if let side = try root.optionalString("padding_side") {
            guard let parsed = PaddingSide(rawValue: side) else {
                throw root.invalid("padding_side", "expected \"left\" or \"right\", found \"\(side)\"")
            }
            paddingSide = parsed
        }
        if let length = root["model_max_length"]?.numberValue, length >= 1, length <= Double(Int32.max) {
            modelMaxLength = Int(length)
        }
    }

    /// Reads the tokenizer_config.json at `path`.
    public init(contentsOfFile path: String) throws {
        try self.init(json: try readJSONFile(path), source: path)
    }
}
