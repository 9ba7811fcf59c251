import NunchakuCore
import SafeTensors

/// The settings of a `tokenizer_config.json` that decide padding: transformers reads these, not tokenizer.json.
public struct TokenizerConfiguration: Sendable, Equatable {
    /// The padding token's text (`pad_token`, a string or an `{"content": …}` object), if set.
    public var padToken: String?
    /// `padding_side`, if set. When absent, transformers uses its tokenizer class's default (right for CLIP and
    /// T5, left for Gemma).
    public var paddingSide: PaddingSide?
    /// `model_max_length`, if set to a usable integer (some files hold a huge placeholder float).
    public var modelMaxLength: Int?

    public init(padToken: String? = nil, paddingSide: PaddingSide? = nil, modelMaxLength: Int? = nil) {
        self.padToken = padToken
        self.paddingSide = paddingSide
        self.modelMaxLength = modelMaxLength
    }

    /// Reads the settings from a parsed tokenizer_config.json; `source` names the file in errors.
    public init(json: JSONValue, source: String = "tokenizer_config.json") throws {
        let root = try TokenizerJSONObject(json, location: source)
        switch root["pad_token"] {
        case nil, .null?: padToken = nil
        case let .string(text)?: padToken = text
        case .object?: padToken = try root.object("pad_token").string("content")
        case let other?: throw root.invalid("pad_token", "expected a string or an object, found \(other.kindDescription)")
        }
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
