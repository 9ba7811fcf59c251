import Foundation
import NunchakuCore

/// The deterministic weights of scripts/parity/flux_transformer_reference.py, regenerated bit for bit:
/// element i of tensor `name` is `Float(offset + scale · (u/2²³ − 1))` with
/// `u = splitmix64(fnv1a64(name) ^ seed, i) >> 40`.
enum GeneratedWeights {
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    static func splitmix64(_ state: UInt64, _ index: Int) -> UInt64 {
        var z = state &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func tensor(name: String, shape: [Int], offset: Double, scale: Double, seed: UInt64) -> Tensor {
        let state = fnv1a64(name) ^ seed
        let values = (0..<shape.reduce(1, *)).map { index -> Float in
            let u = Double(splitmix64(state, index) >> 40)
            return Float(offset + scale * (u / 8_388_608 - 1))
        }
        return Tensor(values, shape: shape)
    }

    /// Every weight a fixture's metadata describes (`weights`: JSON list of [name, shape, offset, scale]; `seed`).
    static func weights(metadata: [String: String]) throws -> [String: Tensor] {
        guard let specText = metadata["weights"], let seedText = metadata["seed"], let seed = UInt64(seedText),
              let spec = try JSONSerialization.jsonObject(with: Data(specText.utf8)) as? [[Any]]
        else { throw NunchakuError.invalidArgument(context: "fixture metadata", reason: "no weights/seed entries") }
        var weights = [String: Tensor]()
        for entry in spec {
            guard entry.count == 4, let name = entry[0] as? String, let shape = entry[1] as? [Int],
                  let offset = (entry[2] as? NSNumber)?.doubleValue, let scale = (entry[3] as? NSNumber)?.doubleValue
            else { throw NunchakuError.invalidArgument(context: "fixture metadata", reason: "bad weights entry \(entry)") }
            weights[name] = tensor(name: name, shape: shape, offset: offset, scale: scale, seed: seed)
        }
        return weights
    }
}
