import CUDABackend
import NunchakuCore
import SVDQuant
@testable import SelfTest
import Testing

/// The W4A4 and AWQ self-test cases without a GPU: coverage of FLUX's shapes, the random layers they build, and the
/// helpers that compare GPU results with the CPU.
@Suite struct W4A4CasesTests {
    static let w4a4 = SelfTestCatalog.cases.filter { $0.kernel.hasPrefix("w4a4.") }
    static let awq = SelfTestCatalog.cases.filter { $0.kernel == "awq.gemv" }

    @Test func casesCoverFluxShapesPathsAndFormats() {
        let linear = Self.w4a4.filter { $0.kernel == "w4a4.linear.s8" && $0.dtype == .bf16 }.map(\.shape)
        for m in [1, 77, 333, 4096, 4608] { #expect(linear.contains { $0.contains("M=\(m) ") }, "M=\(m)") }
        for n in [3072, 9216, 12288, 15360] { #expect(linear.contains { $0.contains("N=\(n) ") }, "N=\(n)") }
        for k in [3072, 12288] { #expect(linear.contains { $0.contains("K=\(k)") }, "K=\(k)") }
        #expect(linear.contains { $0.hasSuffix("unsigned") })
        for kernel in ["w4a4.quantize", "w4a4.gemm.s8", "w4a4.gemm.s4", "w4a4.gemm.fp4", "w4a4.linear.s8", "w4a4.linear.s4",
                       "w4a4.linear.fp4", "awq.gemv"] {
            for dtype in [DType.bf16, .f16] {
                #expect(SelfTestCatalog.cases.contains { $0.kernel == kernel && $0.dtype == dtype }, "\(kernel) \(dtype)")
            }
        }
        #expect(Self.w4a4.contains { $0.kernel == "w4a4.quantize" && $0.shape.hasPrefix("nvfp4") })
        #expect(Self.awq.contains { $0.shape.contains("N=18432") && $0.shape.contains("chunks=6") })
        #expect(Self.awq.contains { $0.shape.contains("N=9216") && !$0.shape.contains("chunks") })
        #expect(SelfTestCatalog.selecting(["w4a4.gemm.s4"]).allSatisfy { $0.kernel == "w4a4.gemm.s4" })
    }

    @Test(arguments: [W4A4SelfTestLayer.int4(128, 256), .int4(256, 128, unsigned: true), .nvfp4(128, 128)])
    func randomLayersAreValidAndGiveModerateOutputs(layer: W4A4SelfTestLayer) throws {
        var random = SelfTestRandom(seed: 7)
        let weights = try W4A4SelfTestData.weights(layer, &random)
        #expect(weights.precision == layer.precision && weights.actUnsigned == layer.unsigned)
        #expect(weights.rank == layer.rank && weights.outFeatures == layer.outFeatures && weights.inFeatures == layer.inFeatures)
        #expect((weights.wtscale == 0.25) == (layer.precision == .nvfp4))
        let x = RandomTensor(shape: [3, layer.inFeatures], dtype: .bf16, range: layer.inputRange, seed: 8)
        let y = try SVDQW4A4Linear(weights: weights).forward(x.tensor).floats()
        let rms = (y.reduce(0) { $0 + Double($1) * Double($1) } / Double(y.count)).squareRoot()
        #expect(rms > 0.05 && rms < 20, "output RMS \(rms)")
        var again = SelfTestRandom(seed: 7)
        #expect(try W4A4SelfTestData.weights(layer, &again).canonical.qweight.withUnsafeBytes { Array($0) }
            == weights.canonical.qweight.withUnsafeBytes { Array($0) }, "weights depend on the seed alone")
    }

    @Test func randomAWQLayersAreValid() throws {
        var random = SelfTestRandom(seed: 9)
        let weights = try AWQSelfTests.weights(n: 96, chunks: 6, inFeatures: 128, &random)
        #expect(weights.modulation?.chunks == 6 && weights.outFeatures == 96 && weights.inFeatures == 128)
        let x = RandomTensor(shape: [2, 128], dtype: .bf16, range: -1...1, seed: 10)
        let y = try AWQW4A16Linear(weights: weights).forward(x.tensor).floats()
        #expect(y.allSatisfy { $0.isFinite && abs($0) < 10 })
    }

    @Test(arguments: [(SVDQuantPrecision.int4, false), (.int4, true), (.nvfp4, false)])
    func dequantizedActivationsAreCodeTimesScale(precision: SVDQuantPrecision, unsigned: Bool) throws {
        let k = precision.groupSize * 2
        // Row 0: codes 0x9 (−7 signed, 9 unsigned, −0.5 E2M1) then 0x3; row 1: 0x7 then 0xF.
        let codes: [UInt8] = [UInt8](repeating: 0x39, count: k / 4) + [UInt8](repeating: 0x33, count: k / 4)
            + [UInt8](repeating: 0x77, count: k / 4) + [UInt8](repeating: 0xFF, count: k / 4)
        let scales: Tensor = precision == .int4
            ? Tensor([0.5, 2, 0.25, 1], shape: [2, 2], dtype: .bf16)
            : try Tensor(shape: [2, 2], dtype: .f8e4m3fn, bytes: [0x38, 0x40, 0x30, 0x38])  // 1, 2, 0.5, 1
        let activations = try QuantizedActivations(
            precision: precision, activationDType: .bf16, unsigned: unsigned,
            codes: try Tensor(shape: [2, k / 2], dtype: .u8, bytes: codes), scales: scales,
            lowRank: Tensor([Float](repeating: 0, count: 2 * 16), shape: [2, 16]))
        let values = W4A4SelfTestData.dequantized(activations)
        let scale = precision == .int4 ? [Float(0.5), 2, 0.25, 1] : [1, 2, 0.5, 1]
        func value(_ code: Int) -> Float {
            switch precision {
            case .int4: Float(unsigned ? code : (code >= 8 ? code - 16 : code))
            case .nvfp4: FloatFormats.float(e2m1: UInt8(code))
            }
        }
        #expect(values[0] == value(9) * scale[0] && values[1] == value(3) * scale[0])
        #expect(values[k / 2] == value(3) * scale[1])
        #expect(values[k] == value(7) * scale[2] && values[2 * k - 1] == value(15) * scale[3])
    }

    @Test func rowGatheringKeepsTheOrderAsked() throws {
        let tensor = Tensor((0..<12).map(Float.init), shape: [4, 3], dtype: .bf16)
        #expect(try W4A4SelfTestData.rows(tensor, [3, 0]).floats() == [9, 10, 11, 0, 1, 2])
        let activations = try QuantizedActivations(
            precision: .int4, activationDType: .f16, unsigned: false,
            codes: try Tensor(shape: [3, 32], dtype: .u8, bytes: (0..<96).map { UInt8($0) }),
            scales: Tensor([1, 2, 3], shape: [3, 1], dtype: .f16),
            lowRank: Tensor((0..<48).map(Float.init), shape: [3, 16]))
        let picked = try W4A4SelfTestData.rows(activations, [2])
        #expect(picked.rows == 1 && picked.scales.floats() == [3] && picked.lowRank.floats() == (32..<48).map(Float.init))
        #expect(picked.codes.withUnsafeBytes { Array($0) } == (64..<96).map { UInt8($0) })
    }
}
