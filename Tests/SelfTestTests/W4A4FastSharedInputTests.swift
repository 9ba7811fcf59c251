import CUDABackend
import NunchakuCore
import SVDQuant
@testable import SelfTest
import Testing

/// Layers sharing one fast W4A4 activation pass, without a GPU: the load-time decision
/// (`CUDAW4A4FastSharedInput.lowRankColumns(sharing:type:)`), the column layout of each layer's GEMM rows and
/// folded weights, the shared reference's one amax over every layer's low-rank values, and agreement of the shared
/// forward with the dense layers.
@Suite struct W4A4FastSharedInputTests {
    /// Random INT4 layers of K = 128 (N = 256, R = 32 and N = 128, R = 16), the second with the first's smoothing.
    static func pair(seed: UInt64 = 31) throws -> [SVDQW4A4Weights] {
        var random = SelfTestRandom(seed: seed)
        let first = try W4A4SelfTestData.weights(.int4(128, 256), &random)
        var second = try W4A4SelfTestData.weights(.int4(128, 128, rank: 16), &random).canonical
        second.smooth = first.canonical.smooth
        return [first, try SVDQW4A4Weights(name: "second", tensors: second, layout: .canonical(vectorOrder: .natural))]
    }

    static func replacingSmooth(_ weights: SVDQW4A4Weights, element: Int, by factor: Float, actUnsigned: Bool = false) throws -> SVDQW4A4Weights {
        var tensors = weights.canonical
        var smooth = tensors.smooth.floats()
        smooth[element] *= factor
        tensors.smooth = Tensor(smooth, shape: [smooth.count], dtype: .bf16)
        return try SVDQW4A4Weights(name: weights.name, tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: actUnsigned)
    }

    @Test func layersShareOnlyWithBitIdenticalSmoothingAndTheSameInput() throws {
        let pair = try Self.pair()
        let columns = try #require(CUDAW4A4FastSharedInput.lowRankColumns(sharing: pair, type: .bf16))
        #expect(columns == [W4A4FastLowRankColumns(offset: 0, total: 48), W4A4FastLowRankColumns(offset: 32, total: 48)])
        #expect(CUDAW4A4FastSharedInput.lowRankColumns(sharing: [pair[0]], type: .bf16) == nil, "one layer shares nothing")
        // One factor one bf16 step off (1 + 2⁻⁷) is another vector; a factor of 1 + 2⁻¹² rounds back to the same bf16.
        let oneStep = try Self.replacingSmooth(pair[1], element: 77, by: 1 + 1 / 128)
        #expect(CUDAW4A4FastSharedInput.lowRankColumns(sharing: [pair[0], oneStep], type: .bf16) == nil)
        let unsigned = try Self.replacingSmooth(pair[1], element: 0, by: 1, actUnsigned: true)
        #expect(CUDAW4A4FastSharedInput.lowRankColumns(sharing: [pair[0], unsigned], type: .bf16) == nil, "a GELU-fed layer shifts its input")
        var random = SelfTestRandom(seed: 3)
        let wider = try W4A4SelfTestData.weights(.int4(256, 128), &random)
        #expect(CUDAW4A4FastSharedInput.lowRankColumns(sharing: [pair[0], wider], type: .bf16) == nil, "another K")
        var tensors = try W4A4SelfTestData.weights(.int4(128, 128, rank: 144), &random).canonical
        tensors.smooth = pair[0].canonical.smooth
        let big = try SVDQW4A4Weights(name: "big", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        #expect(CUDAW4A4FastSharedInput.lowRankColumns(sharing: [pair[0], big], type: .bf16) != nil, "176 low-rank columns")
        #expect(CUDAW4A4FastSharedInput.lowRankColumns(sharing: [big, big], type: .bf16) == nil, "288 low-rank columns exceed 256")
    }

    @Test func eachLayerKeepsItsLowRankColumnsAndZerosInTheOthers() throws {
        let pair = try Self.pair()
        let columns = W4A4FastLowRankColumns.shared(ranks: [32, 16])
        let p = try zip(pair, columns).map { try W4A4FastParameters(weights: $0, type: .bf16, lowRankColumns: $1) }
        #expect(p.map(\.gemmDepth) == [256, 256] && p.map(\.firstLowRankColumn) == [128, 160])
        let folded = W4A4FastReference.foldedWeights(pair[1].canonical.qweight, p[1])
        for row in [0, 77] {
            let line = Array(folded[(row * 256)..<((row + 1) * 256)])
            #expect(line[128..<160].allSatisfy { $0 == 0 }, "the first layer's low-rank columns")
            #expect(Array(line[160..<176]) == Array(p[1].upCodes[(row * 16)..<((row + 1) * 16)]))
            #expect(line[176...].allSatisfy { $0 == 0 })
        }
        for bad in [W4A4FastLowRankColumns(offset: 8, total: 48), .init(offset: 40, total: 48), .init(offset: 0, total: 272)] {
            #expect { try W4A4FastParameters(weights: pair[1], type: .bf16, lowRankColumns: bad) } throws: { error in
                "\(error)".contains("second low-rank columns")
            }
        }
    }

    /// Row 0: the second layer's first low-rank value (14) is the row's largest, so the shared scale is 14/448 where
    /// the first layer alone would use 7/448; row 1: it is small, so the first layer's codes are its own.
    @Test func theSharedPassTakesOneAmaxOverEveryLayersLowRankValues() throws {
        let pair = try Self.pair()
        let p = try zip(pair, W4A4FastLowRankColumns.shared(ranks: [32, 16])).map {
            try W4A4FastParameters(weights: $0, type: .bf16, lowRankColumns: $1)
        }
        let inverse = p[0].inverseSmooth
        var x = [Float](repeating: 0, count: 2 * 128)
        x[0] = 7 / inverse[0]; x[128] = 7 / inverse[0]   // t = 7 up to the fp32 rounding of x · (1/smooth)
        let t = x[0] * inverse[0]
        var first = [Float](repeating: 0, count: 2 * 32), second = [Float](repeating: 0, count: 2 * 16)
        first[3] = 1 / p[0].inverseBeta[3]
        second[0] = 14 / p[1].inverseBeta[0]
        second[16] = 0.5 / p[1].inverseBeta[0]
        let shared = W4A4FastReference.sharedQuantize(x, lowRanks: [first, second], rows: 2, p)
        let alone = W4A4FastReference.quantize(x, lowRank: first, rows: 2, p[0])
        let big = second[0] * p[1].inverseBeta[0]
        #expect(shared.scales[0] == big / 448 && alone.scales[0] == t / 448)
        #expect(shared.codes[0] == FloatFormats.e4m3fnBits(t * (448 / big), saturating: true))
        #expect(shared.codes[160] == FloatFormats.e4m3fnBits(448, saturating: true), "the largest value's code is 448")
        #expect(shared.codes[131] == FloatFormats.e4m3fnBits(first[3] * p[0].inverseBeta[3] * (448 / big), saturating: true))
        #expect(Array(shared.codes[256..<(256 + 160)]) == Array(alone.codes[256..<(256 + 160)]) && shared.scales[1] == alone.scales[1])
        #expect(alone.codes[(256 + 160)...].allSatisfy { $0 == 0 } && shared.codes[256 + 160] != 0)
        let single = W4A4FastReference.sharedQuantize(x, lowRanks: [first], rows: 2, [p[0]])
        #expect(single.codes == alone.codes && single.scales == alone.scales)
    }

    @Test func theSharedForwardTracksBothDenseLayers() throws {
        let pair = try Self.pair()
        let p = try zip(pair, W4A4FastLowRankColumns.shared(ranks: [32, 16])).map {
            try W4A4FastParameters(weights: $0, type: .bf16, lowRankColumns: $1)
        }
        let x = RandomTensor(shape: [16, 128], dtype: .bf16, range: -1...1, seed: 9).tensor
        let outputs = W4A4FastReference.sharedForward(x.floats(), rows: 16, layers: zip(pair, p).map { ($0.canonical.qweight, $1) })
        for (weights, output) in zip(pair, outputs) {
            let dense = try weights.denseForward(x)
            let difference = zip(output, dense).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let error = (difference / dense.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            #expect(output.count == 16 * weights.outFeatures && error < 0.06, "\(weights.name): shared vs dense \(error)")
        }
    }

    @Test func selfTestCasesCoverBothPrecisionsAndARaggedBatch() {
        let shapes = SelfTestCatalog.cases.filter { $0.kernel == "w4a4.fast.shared_input" }.map { "\($0.dtype) \($0.shape)" }
        for expected in ["bf16 int4 M=4608", "f16 int4 M=333", "bf16 nvfp4 M=4608", "f16 nvfp4 M=77"] {
            #expect(shapes.contains { $0.hasPrefix(expected) }, "\(expected) in \(shapes)")
        }
    }
}
