import Foundation
import NunchakuCore

/// One linear of Nunchaku's 4-bit T5 (`awq-int4-flux.1-t5xxl`, `W4Linear`: AWQ W4A16, TinyChat layout, group 128),
/// as stored: `<name>.qweight` int16 `[N/4, K]`, `<name>.scales` and `<name>.scaled_zeros` `[groups, N]` (16-bit
/// floats; `groups` is K/G rounded up to a multiple of 8, the padding rows zero), optionally `<name>.bias` `[N]`.
///
/// `w[n][k] = q(n, k)·scales[k/G][n] + scaled_zeros[k/G][n]` with q ∈ 0…15 the code at nibble `(k % 32) / 8` of
/// int16 element `(n/4)·K + (k/64)·64 + (n%4)·16 + ((k/32)%2)·8 + k%8` (TinyChat packs four rows together and each
/// run of 32 inputs as eight int16 words holding inputs i, i+8, i+16, i+24).
public struct TinyChatW4Layer: Sendable {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public let groupSize: Int
    /// The stored rows of `scales` and `zeros` (at least K/G).
    public let storedGroups: Int
    /// int16 `[N/4, K]`, as in the file.
    public let qweight: Tensor
    /// `[storedGroups, N]`, widened to Float.
    public let scales: [Float]
    /// `scaled_zeros` `[storedGroups, N]`, widened to Float.
    public let zeros: [Float]
    public let bias: Tensor?

    /// The TinyChat group count for `inFeatures` inputs in groups of `groupSize` (≥ 128): K/G rounded up to a
    /// multiple of 8.
    public static func storedGroupCount(inFeatures: Int, groupSize: Int) -> Int { (inFeatures / groupSize + 7) / 8 * 8 }

    /// Reads layer `name` from `provider`; N and K come from `qweight`'s shape.
    /// - Throws: `NunchakuError` naming the tensor when one is missing, of the wrong dtype, or of a shape that does
    ///   not fit the others (K a multiple of 64 and of `groupSize`, `groupSize` ≥ 128).
    public init(name: String, provider: any TensorProvider, groupSize: Int = 128) throws {
        let qweight = try provider.tensor(named: "\(name).qweight")
        guard qweight.dtype == .i16 || qweight.dtype == .u16, qweight.rank == 2 else {
            throw NunchakuError.invalidArgument(
                context: "\(name).qweight", reason: "expected int16 [N/4, K], got \(qweight.dtype) \(qweight.shape)")
        }
        let (n, k) = (4 * qweight.shape[0], qweight.shape[1])
        guard n > 0, k > 0, k % 64 == 0, groupSize >= 128, k % groupSize == 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(name).qweight \(qweight.shape)", reason: "K = \(k) must be a positive multiple of 64 and of the group size \(groupSize)")
        }
        let groups = Self.storedGroupCount(inFeatures: k, groupSize: groupSize)
        func vector(_ suffix: String, _ shape: [Int]) throws -> Tensor {
            let tensor = try provider.tensor(named: "\(name).\(suffix)")
            guard tensor.shape == shape, [.bf16, .f16, .f32].contains(tensor.dtype) else {
                throw NunchakuError.invalidArgument(
                    context: "\(name).\(suffix)", reason: "expected a 16- or 32-bit float \(shape), got \(tensor.dtype) \(tensor.shape)")
            }
            return tensor
        }
        self.name = name
        inFeatures = k
        outFeatures = n
        self.groupSize = groupSize
        storedGroups = groups
        self.qweight = qweight
        scales = try vector("scales", [groups, n]).floatValues(context: "\(name).scales")
        zeros = try vector("scaled_zeros", [groups, n]).floatValues(context: "\(name).scaled_zeros")
        bias = provider.contains("\(name).bias") ? try vector("bias", [n]) : nil
    }

    /// The names this layer occupies in a checkpoint.
    public var tensorNames: [String] {
        ["qweight", "scales", "scaled_zeros"].map { "\(name).\($0)" } + (bias == nil ? [] : ["\(name).bias"])
    }

    /// The 4-bit code of weight (row, column).
    public func code(row: Int, column: Int, words: UnsafeBufferPointer<UInt16>) -> Int {
        let index = (row / 4) * inFeatures + (column / 64) * 64 + (row % 4) * 16 + ((column / 32) % 2) * 8 + column % 8
        return Int(words[index] >> UInt16(4 * ((column % 32) / 8))) & 15
    }

    /// The dequantized weight `[N, K]` in bf16: each element `q·scale + zero` in Float (multiply, then add), rounded once.
    public func dequantizedWeight() throws -> Tensor {
        let words = try qweight.contiguous().scalars(as: UInt16.self)
        var values = [Float](repeating: 0, count: outFeatures * inFeatures)
        words.withUnsafeBufferPointer { words in
            for row in 0..<outFeatures {
                for column in 0..<inFeatures {
                    let group = (column / groupSize) * outFeatures + row
                    let product = Float(code(row: row, column: column, words: words)) * scales[group]
                    values[row * inFeatures + column] = product + zeros[group]
                }
            }
        }
        return Tensor.rounding(values, shape: [outFeatures, inFeatures], to: .bf16)
    }
}

/// A checkpoint with TinyChat 4-bit linears seen as a dense one: each quantized layer's `qweight`, `scales`,
/// `scaled_zeros` become one bf16 `<name>.weight` (dequantized when asked for), every other tensor passes through.
/// The CPU `T5EncoderModel` reads Nunchaku's 4-bit T5 through this (a reference path: weights become dense in memory).
public struct TinyChatDequantizedWeights: TensorProvider, Sendable {
    private let provider: any TensorProvider & Sendable
    /// The quantized layers' names (`encoder.block.0.layer.0.SelfAttention.q`, …).
    public let quantizedLayers: Set<String>
    public let tensorNames: [String]
    public let groupSize: Int

    public init(_ provider: any TensorProvider & Sendable, groupSize: Int = 128) {
        self.provider = provider
        self.groupSize = groupSize
        let layers = Set(provider.tensorNames.filter { $0.hasSuffix(".qweight") }.map { String($0.dropLast(".qweight".count)) })
        quantizedLayers = layers
        let packed = Set(layers.flatMap { layer in ["qweight", "scales", "scaled_zeros"].map { "\(layer).\($0)" } })
        tensorNames = (provider.tensorNames.filter { !packed.contains($0) } + layers.map { "\($0).weight" }).sorted()
    }

    public func tensor(named name: String) throws -> Tensor {
        if name.hasSuffix(".weight"), quantizedLayers.contains(String(name.dropLast(".weight".count))) {
            return try TinyChatW4Layer(name: String(name.dropLast(".weight".count)), provider: provider, groupSize: groupSize).dequantizedWeight()
        }
        return try provider.tensor(named: name)
    }
}
