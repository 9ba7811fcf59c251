import Foundation
import NunchakuCore
@testable import Pipelines
import SafeTensors
import Testing

/// Nunchaku's 4-bit T5 format (TinyChat W4A16, group 128): unpacking against an independent packer that follows
/// TinyChat's `pack_w4` step by step, dequantization, the dequantized view, the checkpoint's metadata config, and
/// the errors.
@Suite struct TinyChatW4LayerTests {
    /// TinyChat's packing written as its recipe reads: each run of 32 inputs becomes eight int16 words, word p holding
    /// inputs p, p+8, p+16, p+24 in its four nibbles (low first); the rows' words are then viewed as
    /// [N/4, 4, K/64, 16] and permuted to [N/4, K/64, 4, 16].
    static func pack(_ codes: [[Int]]) -> [UInt16] {
        let (n, k) = (codes.count, codes[0].count)
        let rowWords = codes.map { row -> [UInt16] in
            stride(from: 0, to: k, by: 32).flatMap { run in
                (0..<8).map { p -> UInt16 in
                    let nibbles: [Int] = [row[run + p], row[run + 8 + p], row[run + 16 + p], row[run + 24 + p]]
                    var word = 0
                    for (position, nibble) in nibbles.enumerated() { word |= nibble << (4 * position) }
                    return UInt16(word)
                }
            }
        }
        var packed = [UInt16]()
        for block in 0..<(n / 4) {
            for column in 0..<(k / 64) {
                for row in 0..<4 { packed += rowWords[4 * block + row][(16 * column)..<(16 * column + 16)] }
            }
        }
        return packed
    }

    static func layerTensors(codes: [[Int]], scales: [Float], zeros: [Float], groups: Int) throws -> [String: Tensor] {
        let (n, k) = (codes.count, codes[0].count)
        return [
            "l.qweight": try pack(codes).withUnsafeBytes { try Tensor(shape: [n / 4, k], dtype: .i16, bytes: $0) },
            "l.scales": Tensor.rounding(scales, shape: [groups, n], to: .bf16),
            "l.scaled_zeros": Tensor.rounding(zeros, shape: [groups, n], to: .bf16),
        ]
    }

    @Test func codesAndWeightsComeBackFromThePackedLayout() throws {
        let (n, k) = (8, 256)
        var random = SplitMix64(seed: 7)
        let codes = (0..<n).map { _ in (0..<k).map { _ in Int(random.next() % 16) } }
        let groups = TinyChatW4Layer.storedGroupCount(inFeatures: k, groupSize: 128)
        #expect(groups == 8)
        var scales = [Float](repeating: 0, count: groups * n), zeros = scales
        for index in 0..<(2 * n) {
            scales[index] = Float(index + 1) / 64
            zeros[index] = -Float(index) / 8
        }
        let layer = try TinyChatW4Layer(name: "l", provider: try Self.layerTensors(codes: codes, scales: scales, zeros: zeros, groups: groups))
        #expect(layer.outFeatures == n && layer.inFeatures == k && layer.bias == nil)
        let words = try layer.qweight.scalars(as: UInt16.self)
        words.withUnsafeBufferPointer { words in
            for row in 0..<n {
                for column in 0..<k { #expect(layer.code(row: row, column: column, words: words) == codes[row][column]) }
            }
        }
        let weight = try layer.dequantizedWeight().floats()
        for (row, column) in [(0, 0), (3, 127), (5, 128), (7, 255)] {
            let group = column / 128
            let expected = Float(codes[row][column]) * scales[group * n + row] + zeros[group * n + row]
            #expect(weight[row * k + column] == FloatFormats.float(bf16: FloatFormats.bf16Bits(expected)))
        }
    }

    @Test func storedGroupsArePaddedToEight() {
        #expect(TinyChatW4Layer.storedGroupCount(inFeatures: 4096, groupSize: 128) == 32)
        #expect(TinyChatW4Layer.storedGroupCount(inFeatures: 10240, groupSize: 128) == 80)
        #expect(TinyChatW4Layer.storedGroupCount(inFeatures: 384, groupSize: 128) == 8)
    }

    @Test func badLayersNameTheTensor() throws {
        let codes = [[Int]](repeating: [Int](repeating: 3, count: 128), count: 4)
        var tensors = try Self.layerTensors(codes: codes, scales: [Float](repeating: 1, count: 32), zeros: [Float](repeating: 0, count: 32), groups: 8)
        tensors["l.scales"] = Tensor.rounding([Float](repeating: 1, count: 4), shape: [1, 4], to: .bf16)
        #expect(throws: NunchakuError.self) { _ = try TinyChatW4Layer(name: "l", provider: tensors) }
        do { _ = try TinyChatW4Layer(name: "l", provider: tensors) } catch { #expect("\(error)".contains("l.scales")) }
        tensors["l.qweight"] = Tensor([Float](repeating: 0, count: 128), shape: [1, 128])
        do { _ = try TinyChatW4Layer(name: "l", provider: tensors); Issue.record("accepted a float qweight") } catch {
            #expect("\(error)".contains("l.qweight"))
        }
        tensors.removeValue(forKey: "l.qweight")
        #expect(throws: (any Error).self) { _ = try TinyChatW4Layer(name: "l", provider: tensors) }
    }

    @Test func dequantizedViewReplacesThePackedTensors() throws {
        let layer = try TinyChatSyntheticCheckpoint.layer(name: "enc.q", outFeatures: 8, inFeatures: 128, seed: 3)
        var tensors = layer
        tensors["enc.norm.weight"] = Tensor([1, 2], shape: [2])
        let view = TinyChatDequantizedWeights(tensors)
        #expect(view.tensorNames == ["enc.norm.weight", "enc.q.weight"])
        #expect(view.quantizedLayers == ["enc.q"])
        let weight = try view.tensor(named: "enc.q.weight")
        #expect(weight.shape == [8, 128] && weight.dtype == .bf16)
        #expect(try weight.floats() == TinyChatW4Layer(name: "enc.q", provider: layer).dequantizedWeight().floats())
        #expect(try view.tensor(named: "enc.norm.weight").floats() == [1, 2])
    }

    /// A synthetic 4-bit T5 file with its config in the metadata runs on the CPU like a dense T5 holding the weights
    /// dequantized by the formula (computed here, independently of `dequantizedWeight`).
    @Test func checkpointFileLoadsAndMatchesTheDenseModel() throws {
        let config = T5EncoderConfig(vocabSize: 40, dModel: 128, dKv: 32, numHeads: 4, dFf: 256, numLayers: 1,
                                     relativeAttentionMaxDistance: 20)
        let tensors = try TinyChatSyntheticCheckpoint.t5(config: config, seed: 11)
        let json = """
            {"vocab_size": 40, "d_model": 128, "d_kv": 32, "num_heads": 4, "d_ff": 256, "num_layers": 1,
             "relative_attention_num_buckets": 32, "relative_attention_max_distance": 20, "layer_norm_epsilon": 1e-6,
             "feed_forward_proj": "gated-gelu", "model_type": "t5"}
            """
        var writer = SafeTensorsWriter(metadata: ["config": json])
        for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
        let path = try makeTemporaryFolder() + "/awq-int4-t5.safetensors"
        try writer.write(to: path)
        let checkpoint = try T5AWQCheckpoint(path: path)
        #expect(checkpoint.config == config)

        var dense: [String: Tensor] = [:]
        for (name, tensor) in tensors where !name.hasSuffix(".qweight") && !name.hasSuffix(".scales") && !name.hasSuffix(".scaled_zeros") {
            dense[name] = tensor
        }
        for layer in Set(tensors.keys.filter { $0.hasSuffix(".qweight") }.map { String($0.dropLast(8)) }) {
            let packed = try tensors["\(layer).qweight"]!.scalars(as: UInt16.self)
            let (n, k) = (4 * tensors["\(layer).qweight"]!.shape[0], tensors["\(layer).qweight"]!.shape[1])
            let scales = tensors["\(layer).scales"]!.floats(), zeros = tensors["\(layer).scaled_zeros"]!.floats()
            var values = [Float](repeating: 0, count: n * k)
            for row in 0..<n {
                for column in 0..<k {
                    let word = packed[(row / 4) * k + (column / 64) * 64 + (row % 4) * 16 + ((column / 32) % 2) * 8 + column % 8]
                    let code = Float((Int(word) >> (4 * ((column % 32) / 8))) & 15)
                    values[row * k + column] = code * scales[(column / 128) * n + row] + zeros[(column / 128) * n + row]
                }
            }
            dense["\(layer).weight"] = Tensor.rounding(values, shape: [n, k], to: .bf16)
        }
        let ids = [[1, 5, 39, 0, 12, 7]]
        let quantized = try checkpoint.cpuModel(dtype: .f32).encode(tokenIDs: ids).floats()
        let reference = try T5EncoderModel(config: config, weights: dense, source: "dense", dtype: .f32).encode(tokenIDs: ids).floats()
        #expect(quantized == reference)
    }

    @Test func checkpointWithoutConfigMetadataIsNamed() throws {
        var writer = SafeTensorsWriter()
        try writer.add("shared.weight", Tensor([1, 2], shape: [1, 2]))
        let path = try makeTemporaryFolder() + "/no-config.safetensors"
        try writer.write(to: path)
        do { _ = try T5AWQCheckpoint(path: path); Issue.record("accepted a file without config") } catch {
            #expect("\(error)".contains(path) && "\(error)".contains("config"))
        }
    }
}
