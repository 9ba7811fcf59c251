import Foundation
import NunchakuCore

/// Decodes a transformers `config.json` into `Config`, turning decoding failures into an error that names the
/// file and the key.
func decodeTextEncoderConfig<Config: Decodable>(_ type: Config.Type, from data: Data, source: String) throws -> Config {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    do {
        return try decoder.decode(Config.self, from: data)
    } catch let DecodingError.keyNotFound(key, _) {
        throw NunchakuError.invalidArgument(context: source, reason: "config has no `\(snakeCase(key.stringValue))`")
    } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
        let path = context.codingPath.map { snakeCase($0.stringValue) }.joined(separator: ".")
        throw NunchakuError.invalidArgument(context: source, reason: "config value `\(path)` has the wrong type")
    } catch {
        throw NunchakuError.invalidArgument(context: source, reason: "not a valid config.json: \(error)")
    }
}

/// Throws unless every named value is positive.
func requirePositive(_ values: KeyValuePairs<String, Int>, source: String) throws {
    for (key, value) in values where value <= 0 {
        throw NunchakuError.invalidArgument(context: source, reason: "`\(key)` must be positive, got \(value)")
    }
}

/// `hiddenSize` → `hidden_size`, for messages about config keys.
private func snakeCase(_ name: String) -> String {
    var result = ""
    for character in name {
        if character.isUppercase { result += "_" + character.lowercased() } else { result.append(character) }
    }
    return result
}
