import Foundation
import NunchakuCore

/// An `AutoencoderKL` checkpoint seen the way the decoder reads it: the encoder half (`encoder.*`, `quant_conv.*`),
/// which decoding never uses, is set aside, and legacy mid-block attention names (`query`, `key`, `value`,
/// `proj_attn`, possibly stored as 1×1 convolutions `[C, C, 1, 1]`) are presented under diffusers' current names
/// (`to_q`, `to_k`, `to_v`, `to_out.0`, `[C, C]`), as diffusers renames them on load.
struct VAEDecoderWeights: TensorProvider {
    private let provider: any TensorProvider
    /// Current name → the name in the checkpoint.
    private let storedName: [String: String]
    let tensorNames: [String]

    /// Prefixes of the encoder half of an AutoencoderKL checkpoint.
    static let encoderPrefixes = ["encoder.", "quant_conv."]
    private static let legacyAttentionNames = [
        ".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0.",
    ]

    init(_ provider: any TensorProvider) {
        self.provider = provider
        let decoderNames = provider.tensorNames.filter { name in !Self.encoderPrefixes.contains(where: { name.hasPrefix($0) }) }
        var storedName = [String: String]()
        for name in decoderNames where Self.currentName(name) == name { storedName[name] = name }
        // A legacy name whose current twin also exists stays as it is, so strict loading reports it unexpected.
        for name in decoderNames where Self.currentName(name) != name {
            let current = Self.currentName(name)
            storedName[storedName[current] == nil ? current : name] = name
        }
        self.storedName = storedName
        tensorNames = storedName.keys.sorted()
    }

    func tensor(named name: String) throws -> Tensor {
        guard let stored = storedName[name] else {
            throw NunchakuError.invalidArgument(context: name, reason: "no tensor with this name")
        }
        let tensor = try provider.tensor(named: stored)
        if stored != name, tensor.rank == 4, tensor.shape[2] == 1, tensor.shape[3] == 1 {
            return try tensor.reshaped([tensor.shape[0], tensor.shape[1]])
        }
        return tensor
    }

    /// The diffusers name of a (possibly legacy) decoder tensor name.
    private static func currentName(_ name: String) -> String {
        guard name.contains(".attentions.") else { return name }
        for (legacy, current) in legacyAttentionNames where name.contains(legacy) {
            return name.replacingOccurrences(of: legacy, with: current)
        }
        return name
    }
}
