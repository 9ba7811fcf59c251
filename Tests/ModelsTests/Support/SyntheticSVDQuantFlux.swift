import Foundation
import NunchakuCore
import SVDQuant
@testable import Models

/// Synthetic Nunchaku SVDQuant FLUX checkpoints, bit for bit those of scripts/parity/svdquant_synthetic.py (its
/// docstring gives the recipe): canonical tensors from the name-hashed generator, packed with the SVDQuant layouts
/// into a merged file's tensors (C++ names).
enum SyntheticSVDQuantFlux {
    static let rank = 32

    /// One linear of the checkpoint.
    enum Kind: Equatable {
        case dense
        case w4a4(fusedQKV: Bool, zeroBias: Bool, afterGELU: Bool)
        case awq(chunks: Int)
    }

    /// Every linear of a Nunchaku FLUX checkpoint of `config`: (name, kind, K, N).
    static func layers(_ config: FluxConfig) -> [(name: String, kind: Kind, k: Int, n: Int)] {
        let d = config.innerDim, hidden = config.mlpHiddenDim
        let plain = Kind.w4a4(fusedQKV: false, zeroBias: false, afterGELU: false)
        let qkv = Kind.w4a4(fusedQKV: true, zeroBias: false, afterGELU: false)
        let fc2 = Kind.w4a4(fusedQKV: false, zeroBias: false, afterGELU: true)
        var result: [(String, Kind, Int, Int)] = [
            ("x_embedder", .dense, config.inChannels, d), ("context_embedder", .dense, config.jointAttentionDim, d),
        ]
        for embedder in ["timestep_embedder"] + (config.guidanceEmbeds ? ["guidance_embedder"] : []) {
            result += [("time_text_embed.\(embedder).linear_1", .dense, 256, d), ("time_text_embed.\(embedder).linear_2", .dense, d, d)]
        }
        result += [("time_text_embed.text_embedder.linear_1", .dense, config.pooledProjectionDim, d),
                   ("time_text_embed.text_embedder.linear_2", .dense, d, d)]
        for i in 0..<config.numLayers {
            let p = "transformer_blocks.\(i)"
            for suffix in ["", "_context"] {
                result += [("\(p).norm1\(suffix).linear", .awq(chunks: 6), d, 6 * d), ("\(p).qkv_proj\(suffix)", qkv, d, 3 * d),
                           ("\(p).out_proj\(suffix)", plain, d, d)]
            }
            for mlp in ["mlp", "mlp_context"] {
                result += [("\(p).\(mlp)_fc1", plain, d, hidden), ("\(p).\(mlp)_fc2", fc2, hidden, d)]
            }
        }
        for i in 0..<config.numSingleLayers {
            let p = "single_transformer_blocks.\(i)"
            result += [("\(p).norm.linear", .awq(chunks: 3), d, 3 * d), ("\(p).qkv_proj", qkv, d, 3 * d),
                       ("\(p).mlp_fc1", plain, d, hidden),
                       ("\(p).out_proj", .w4a4(fusedQKV: false, zeroBias: true, afterGELU: false), d, d),
                       ("\(p).mlp_fc2", fc2, hidden, d)]
        }
        return result + [("norm_out.linear", .dense, d, 2 * d), ("proj_out", .dense, d, config.outputFeatures)]
    }

    /// The packed tensors of the checkpoint, by name.
    static func checkpoint(config: FluxConfig, precision: SVDQuantPrecision, seed: UInt64) throws -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (name, kind, k, n) in layers(config) {
            switch kind {
            case .dense:
                tensors["\(name).weight"] = uniform("\(name).weight", [n, k], 0, inverseSqrtPower(k), seed)
                tensors["\(name).bias"] = uniform("\(name).bias", [n], 0, 0.125, seed)
            case let .w4a4(fusedQKV, zeroBias, afterGELU):
                let canonical = w4a4(name, k: k, n: n, precision: precision, fusedQKV: fusedQKV, zeroBias: zeroBias, seed: seed)
                let weights = try SVDQW4A4Weights(
                    name: name, tensors: canonical, layout: .canonical(vectorOrder: .natural),
                    actUnsigned: afterGELU && precision == .int4)
                let packed = try weights.tensors(layout: .nunchaku)
                let roles: [(String, Tensor?)] = [
                    ("qweight", try packed.qweight.reinterpreted(as: .i8)), ("wscales", packed.wscales), ("wtscale", packed.wtscale),
                    ("wcscales", packed.wcscales), ("bias", packed.bias), ("smooth", packed.smooth),
                    ("smooth_orig", packed.smoothOrig), ("lora_down", packed.projDown), ("lora_up", packed.projUp),
                ]
                for case let (role, tensor?) in roles { tensors["\(name).\(role)"] = tensor }
            case let .awq(chunks):
                let weights = try AWQW4A16Weights(
                    name: name, tensors: awq(name, k: k, n: n, chunks: chunks, seed: seed), layout: .canonical,
                    modulation: ModulationInterleave(chunks: chunks))
                let packed = try weights.tensors(layout: .nunchaku)
                tensors["\(name).qweight"] = packed.qweight
                tensors["\(name).wscales"] = packed.wscales
                tensors["\(name).wzeros"] = packed.wzeros
                tensors["\(name).bias"] = packed.bias
            }
        }
        for i in 0..<config.numLayers {
            for norm in ["norm_q", "norm_k", "norm_added_q", "norm_added_k"] {
                let name = "transformer_blocks.\(i).\(norm).weight"
                tensors[name] = uniform(name, [config.attentionHeadDim], 1, 0.5, seed)
            }
        }
        for i in 0..<config.numSingleLayers {
            for norm in ["norm_q", "norm_k"] {
                let name = "single_transformer_blocks.\(i).\(norm).weight"
                tensors[name] = uniform(name, [config.attentionHeadDim], 1, 0.5, seed)
            }
        }
        return tensors
    }

    /// Nunchaku's `quantization_config` metadata for `precision`.
    static func quantizationConfig(_ precision: SVDQuantPrecision, rank: Int = rank) -> String {
        precision == .int4
            ? #"{"method": "svdquant", "weight": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "activation": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "rank": \#(rank)}"#
            : #"{"method": "svdquant", "weight": {"dtype": "fp4_e2m1_all", "scale_dtype": [null, "fp8_e4m3_nan"], "group_size": 16}, "activation": {"dtype": "fp4_e2m1_all", "scale_dtype": "fp8_e4m3_nan", "group_size": 16}, "rank": \#(rank)}"#
    }

    // MARK: Layers

    private static func w4a4(
        _ name: String, k: Int, n: Int, precision: SVDQuantPrecision, fusedQKV: Bool, zeroBias: Bool, seed: UInt64
    ) -> SVDQW4A4Tensors {
        let p = inverseSqrtPower(k)
        var wtscale: Tensor?, wcscales: Tensor?
        let wscales: Tensor
        if precision == .int4 {
            wscales = uniform("\(name).wscales", [k / 64, n], 1.5 * p / 32, 0.5 * p / 32, seed)
        } else {
            wscales = fp8Bytes("\(name).wscales", [k / 16, n], seed)
            if fusedQKV {
                wcscales = uniform("\(name).wcscales", [n], 1.5 * p / 4, 0.5 * p / 4, seed)
            } else {
                wtscale = Tensor([Float(p / 4)], shape: [1]).converted(to: .bf16)
            }
        }
        return SVDQW4A4Tensors(
            qweight: codeBytes("\(name).qweight", [n, k / 2], seed), wscales: wscales, wtscale: wtscale, wcscales: wcscales,
            bias: zeroBias ? Tensor(zeros: [n], dtype: .bf16) : uniform("\(name).bias", [n], 0, 0.125, seed),
            smooth: uniform("\(name).smooth", [k], 1, 0.5, seed), smoothOrig: uniform("\(name).smooth_orig", [k], 1, 0.5, seed),
            projDown: uniform("\(name).lora_down", [k, rank], 0, p, seed), projUp: uniform("\(name).lora_up", [n, rank], 0, 0.5, seed))
    }

    private static func awq(_ name: String, k: Int, n: Int, chunks: Int, seed: UInt64) -> AWQW4A16Tensors {
        let s = inverseSqrtPower(k) / 4
        let wscales = uniform("\(name).wscales", [k / 64, n], 1.5 * s, 0.5 * s, seed)
        var bias = uniform("\(name).bias", [n], 0, 0.125, seed).floats()
        let width = n / chunks
        for chunk in Set([1, chunks - 2]) {
            for d in 0..<width { bias[chunk * width + d] += 1 }
        }
        return AWQW4A16Tensors(
            qweight: codeBytes("\(name).qweight", [n, k / 2], seed), wscales: wscales,
            wzeros: Tensor(wscales.floats().map { -8 * $0 }, shape: wscales.shape).converted(to: .bf16),
            bias: Tensor(bias, shape: [n]).converted(to: .bf16))
    }

    // MARK: Generator

    /// u_i = splitmix64(fnv1a64(name) ^ seed, i) >> 40 (24 bits). Written as one loop: debug builds are slow
    /// with closures.
    private static func stream(_ name: String, _ count: Int, _ seed: UInt64) -> [UInt64] {
        let state = GeneratedWeights.fnv1a64(name) ^ seed
        return [UInt64](unsafeUninitializedCapacity: count) { buffer, initialized in
            var z = state
            for index in 0..<count {
                z = z &+ 0x9E37_79B9_7F4A_7C15  // state + (index + 1) · golden
                var x = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
                buffer[index] = (x ^ (x >> 31)) >> 40
            }
            initialized = count
        }
    }

    /// bf16 `offset + scale · ((u >> 17) − 64) / 64`. The parameters used here make every value exact in bf16, so
    /// its bits are the top half of the f32 bits; a value that is not exact stops the test.
    static func uniform(_ name: String, _ shape: [Int], _ offset: Double, _ scale: Double, _ seed: UInt64) -> Tensor {
        let values = stream(name, shape.reduce(1, *), seed)
        var tensor = Tensor(zeros: shape, dtype: .bf16)
        tensor.withUnsafeMutableBytes { raw in
            let bits = raw.bindMemory(to: UInt16.self)
            for index in values.indices {
                let value = Float(offset + scale * (Double(values[index] >> 17) - 64) / 64)
                precondition(value.bitPattern & 0xFFFF == 0, "\(name): \(value) is not exact in bf16")
                bits[index] = UInt16(value.bitPattern >> 16)
            }
        }
        return tensor
    }

    private static func codeBytes(_ name: String, _ shape: [Int], _ seed: UInt64) -> Tensor {
        bytes(stream(name, shape.reduce(1, *), seed).map { UInt8($0 & 0xFF) }, shape, .u8)
    }

    /// float8 e4m3 codes `2^-3`'s code + (u & 15): values 0.125 … 0.46875.
    private static func fp8Bytes(_ name: String, _ shape: [Int], _ seed: UInt64) -> Tensor {
        bytes(stream(name, shape.reduce(1, *), seed).map { UInt8(32 + ($0 & 15)) }, shape, .f8e4m3fn)
    }

    private static func bytes(_ values: [UInt8], _ shape: [Int], _ dtype: DType) -> Tensor {
        var tensor = Tensor(zeros: shape, dtype: dtype)
        tensor.withUnsafeMutableBytes { $0.copyBytes(from: values) }
        return tensor
    }

    /// 2^−⌊log2(K)/2⌋ ≈ 1/√K.
    static func inverseSqrtPower(_ k: Int) -> Double {
        Foundation.pow(2, -Foundation.floor(Foundation.log2(Double(k)) / 2))
    }

    /// Σ_i splitmix64(0, 256·i + byte_i) mod 2^64 over the tensor's bytes, as 16 hex digits (as
    /// svdquant_synthetic.digest computes it).
    static func digest(_ tensor: Tensor) -> String {
        let sum = tensor.withUnsafeBytes { bytes in
            var sum: UInt64 = 0
            for index in 0..<bytes.count {
                let z = UInt64(256 * index + Int(bytes[index]) + 1) &* 0x9E37_79B9_7F4A_7C15
                var x = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
                sum = sum &+ (x ^ (x >> 31))
            }
            return sum
        }
        let hex = String(sum, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension Tensor {
    /// The same bytes read as another dtype of the same width.
    func reinterpreted(as dtype: DType) throws -> Tensor {
        let dense = contiguous()
        return try Tensor(storage: dense.storage, byteOffset: dense.byteOffset, shape: dense.shape, dtype: dtype)
    }
}
