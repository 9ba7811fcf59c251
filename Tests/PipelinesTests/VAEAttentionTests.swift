import Foundation
import Testing
import CPUBackend
import Models
import NunchakuCore
@testable import Pipelines

/// The mid-block attention's query blocking (used above ~2000 tokens) against one block and a direct evaluation.
struct VAEAttentionTests {
    @Test func queryBlocksGiveTheSameResultAsOneBlock() throws {
        let channels = 8, height = 5, width = 8  // 40 tokens
        let fixture = try VAEFixture(variant: "flux")  // borrow generated values for the weights
        let source = fixture.weights["decoder.up_blocks.3.resnets.1.conv1.weight"]!.floats()  // [8, 8, 3, 3]
        var weights = [String: Tensor]()
        for (index, name) in ["to_q", "to_k", "to_v", "to_out.0"].enumerated() {
            weights["mid.\(name).weight"] = Tensor(Array(source[(index * 64)..<(index * 64 + 64)]), shape: [channels, channels])
            weights["mid.\(name).bias"] = Tensor((0..<channels).map { Float($0 - index) / 16 }, shape: [channels])
        }
        weights["mid.group_norm.weight"] = Tensor((0..<channels).map { 1 + Float($0) / 8 }, shape: [channels])
        weights["mid.group_norm.bias"] = Tensor((0..<channels).map { Float($0) / 10 - 0.3 }, shape: [channels])
        let input = FeatureMap(height: height, width: width, channels: channels,
                               values: (0..<(height * width * channels)).map { Float(sin(Double($0) * 0.37)) })

        func block(budget: Int) throws -> VAEAttentionBlock {
            let reader = WeightReader(weights, source: "attention")
            let block = try VAEAttentionBlock("mid", channels: channels, groups: 2, weights: reader, precision: .float32, scoreBudget: budget)
            try reader.finish()
            return block
        }
        let whole = try block(budget: 1 << 20)(input, precision: .float32)
        let blocked = try block(budget: 40 * 7)(input, precision: .float32)  // blocks of 7 query rows, the last of 5
        #expect(blocked.values == whole.values)

        // Direct evaluation in Double: softmax(q kᵀ / √C) v, projected, plus the input.
        let normalized = try block(budget: 1 << 20).norm(input, thenSiLU: false, precision: .float32).values
        func linear(_ name: String, _ x: [Float]) -> [Double] {
            let w = weights["mid.\(name).weight"]!.floats(), b = weights["mid.\(name).bias"]!.floats()
            return (0..<40).flatMap { t in (0..<channels).map { o in
                (0..<channels).reduce(Double(b[o])) { $0 + Double(x[t * channels + $1]) * Double(w[o * channels + $1]) } } }
        }
        let q = linear("to_q", normalized), k = linear("to_k", normalized), v = linear("to_v", normalized)
        var attended = [Float](repeating: 0, count: 40 * channels)
        for t in 0..<40 {
            let scores = (0..<40).map { s in (0..<channels).reduce(0.0) { $0 + q[t * channels + $1] * k[s * channels + $1] } / Double(channels).squareRoot() }
            let maximum = scores.max()!, exps = scores.map { exp($0 - maximum) }, total = exps.reduce(0, +)
            for c in 0..<channels { attended[t * channels + c] = Float((0..<40).reduce(0.0) { $0 + exps[$1] / total * v[$1 * channels + c] }) }
        }
        let expected = zip(linear("to_out.0", attended), input.values).map { Float($0 + Double($1)) }
        let error = Comparison.relativeError(whole.values, expected)
        #expect(error < 1e-5, "relative error \(error) against the direct evaluation")
    }
}
