import NunchakuCore
import Testing
@testable import Quantizer

/// Hand-computed cases of the weight, activation and AWQ quantizers.
@Suite struct FormatQuantizationTests {
    @Test func int4ScaleIsAmaxOverSevenRoundedToBF16() throws {
        // Row 0: group 0 has amax 0.7 → scale bf16(0.1) = 0.10009765625; group 1 is all zero → scale 1.
        // Row 1: group 0 has amax 0.875 → scale 0.125 exactly (ties to even at 2.5 and 3.5); group 1 amax 1.4.
        var weight = [Float](repeating: 0, count: 2 * 128)
        weight[0] = 0.7; weight[1] = -0.35; weight[2] = 0.05; weight[3] = -0.7
        weight[128] = 0.875; weight[129] = 0.3125; weight[130] = 0.4375; weight[131] = -0.3125
        weight[128 + 64] = 1.4
        let quantized = try WeightQuantizer.quantize(weight, rows: 2, columns: 128, format: .int4)
        // wscales is [K/64, N]: index group * N + row.
        #expect(quantized.scales == [0.10009765625, 0.125, 1, 0.2001953125])
        #expect(quantized.tensorScale == 1)
        guard case let .int4(codes) = quantized.codes else { Issue.record("INT4 codes expected"); return }
        #expect(Array(codes[0..<4]) == [7, -3, 0, -7])
        #expect(Array(codes[128..<132]) == [7, 2, 4, -2])
        #expect(codes[128 + 64] == 7)
        #expect(quantized.dequantized[0] == 0.70068359375)
        #expect(quantized.dequantized[129] == 0.25)
    }

    @Test func nvfp4UsesTensorAndMicroScales() throws {
        // amax 1344 → wtscale = bf16(1344 / 6 / 448) = 0.5.
        var weight = [Float](repeating: 0, count: 64)
        weight[0] = 3; weight[1] = 1.25; weight[2] = -0.75; weight[3] = 0.1  // group 0: micro-scale e4m3(1) = 1
        weight[16] = 1344                                                 // group 1: micro-scale 448
        weight[32] = 0.0001                                               // group 2: micro-scale rounds to 0
        let quantized = try WeightQuantizer.quantize(weight, rows: 1, columns: 64, format: .nvfp4)
        #expect(quantized.tensorScale == 0.5)
        #expect(quantized.scales == [1, 448, 0, 0])
        guard case let .e2m1(codes) = quantized.codes else { Issue.record("E2M1 codes expected"); return }
        // 3/0.5 = 6 → 0x7; 2.5 → 2 (tie to even) → 0x4; −1.5 → 0xB; 0.2 → 0.
        #expect(Array(codes[0..<4]) == [0x7, 0x4, 0xB, 0x0])
        #expect(codes[16] == 0x7 && codes[32] == 0)
        #expect(Array(quantized.dequantized[0..<4]) == [3, 1, -0.75, 0])
        #expect(quantized.dequantized[16] == 1344)
    }

    @Test func e2m1TableMatchesFloatFormats() {
        // Every representable value, every midpoint (ties), values around them, beyond saturation, NaN and zeros.
        var samples: [Float] = [0, -0.0, .nan, 7, 100, .infinity, 1e-30]
        for magnitude in E2M1Table.values + [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5] {
            samples += [magnitude, magnitude.nextUp, magnitude.nextDown, magnitude * 1.01, magnitude * 0.99]
        }
        for step in 0...700 { samples.append(Float(step) * 0.01) }
        for sample in samples + samples.map({ -$0 }) {
            #expect(E2M1Table.code(sample) == FloatFormats.e2m1Code(sample), "\(sample)")
        }
        for code in UInt8(0)...15 { #expect(E2M1Table.value(code) == FloatFormats.float(e2m1: code)) }
    }

    @Test func weightQuantizerRejectsBadShapes() {
        #expect(throws: NunchakuError.self) { try WeightQuantizer.quantize([1, 2, 3], rows: 1, columns: 4, format: .int4) }
        #expect(throws: NunchakuError.self) {
            try WeightQuantizer.quantize([Float](repeating: 1, count: 40), rows: 1, columns: 40, format: .nvfp4)
        }
    }

    @Test func activationQuantizersFollowTheRuntime() throws {
        var signed = [Float](repeating: 0, count: 64)
        signed[0] = 7; signed[1] = -3.5; signed[2] = 1.25
        #expect(Array(try ActivationQuantizer.int4Signed.fakeQuantize(signed, rows: 1, columns: 64)[0..<3]) == [7, -4, 1])
        var unsigned = [Float](repeating: 0, count: 64)
        unsigned[0] = 15; unsigned[1] = 7.5; unsigned[2] = 2.5; unsigned[3] = -1
        #expect(Array(try ActivationQuantizer.int4Unsigned.fakeQuantize(unsigned, rows: 1, columns: 64)[0..<4]) == [15, 8, 2, 0])
        var fp4 = [Float](repeating: 0, count: 32)
        fp4[0] = 6; fp4[1] = 2.5; fp4[2] = -1.25; fp4[3] = 0.2
        fp4[16] = 6000  // scale clamps at 448, codes saturate at 6
        let result = try ActivationQuantizer.nvfp4.fakeQuantize(fp4, rows: 1, columns: 32)
        #expect(Array(result[0..<4]) == [6, 2, -1, 0])
        #expect(result[16] == 2688)
        #expect(try ActivationQuantizer.nvfp4.fakeQuantize([Float](repeating: 0, count: 16), rows: 1, columns: 16).allSatisfy { $0 == 0 })
        #expect(throws: NunchakuError.self) { try ActivationQuantizer.int4Signed.fakeQuantize([1, 2], rows: 1, columns: 2) }
    }

    @Test func runtimeActivationQuantizerFollowsFormatAndInput() {
        #expect(ActivationQuantizer(format: .int4, inputKind: .general) == .int4Signed)
        #expect(ActivationQuantizer(format: .int4, inputKind: .postGELU) == .int4Unsigned)
        #expect(ActivationQuantizer(format: .nvfp4, inputKind: .postGELU) == .nvfp4)
    }

    @Test func awqIsAsymmetricPerGroup() throws {
        // Row 0, group 0: min −1, max 2 → scale bf16(0.2) = 0.2001953125, offset −1.
        var weight = [Float](repeating: 0, count: 4 * 64)
        weight[0] = -1; weight[1] = 0.5; weight[2] = 2
        for column in 0..<64 { weight[64 + column] = 0.25 }  // row 1: constant group → scale 1
        for row in 2..<4 { for column in 0..<64 { weight[row * 64 + column] = Float(column) / 64 - 0.5 } }
        let quantized = try AWQQuantizer.quantize(name: "norm1.linear", weight: weight, outFeatures: 4, inFeatures: 64)
        #expect(quantized.scales[0] == 0.2001953125 && quantized.zeros[0] == -1)
        #expect(quantized.scales[1] == 1 && quantized.zeros[1] == 0.25)
        #expect(Array(quantized.codes[0..<4]) == [0, 7, 15, 5])
        #expect(quantized.codes[64] == 0)
        let dequantized = quantized.dequantizedWeight()
        #expect(Array(dequantized[0..<4]) == [-1, 0.4013671875, 2.0029296875, 0.0009765625])
        #expect(dequantized[64] == 0.25)
        #expect(quantized.bias == [0, 0, 0, 0])
        #expect(quantized.relativeWeightError > 0)
        #expect(abs(quantized.relativeWeightError - relativeError(dequantized, weight)) < 1e-12)
    }

    @Test func awqHandlesGroupsFarFromZero() throws {
        // min 100.2 rounds down to the bf16 offset 100: the scale must cover [100, 100.8], not just the 0.6 range.
        let weight = (0..<(4 * 64)).map { Float(100.2) + 0.6 * Float($0 % 64) / 63 }
        let quantized = try AWQQuantizer.quantize(name: "norm.linear", weight: weight, outFeatures: 4, inFeatures: 64)
        #expect(quantized.zeros[0] == 100)
        #expect(maxDifference(quantized.dequantizedWeight(), weight) < 0.03)
    }

    @Test func awqRejectsBadInput() {
        let weight = [Float](repeating: 0.5, count: 4 * 96)
        #expect(throws: NunchakuError.self) { try AWQQuantizer.quantize(name: "a", weight: weight, outFeatures: 4, inFeatures: 96) }
        #expect(throws: NunchakuError.self) {
            try AWQQuantizer.quantize(name: "a", weight: [Float](repeating: 0.5, count: 3 * 64), outFeatures: 3, inFeatures: 64)
        }
        var nan = [Float](repeating: 0.5, count: 4 * 64)
        nan[5] = .infinity
        do {
            _ = try AWQQuantizer.quantize(name: "norm.linear", weight: nan, outFeatures: 4, inFeatures: 64)
            Issue.record("Inf must be rejected")
        } catch {
            #expect("\(error)".contains("norm.linear") && "\(error)".contains("element 5"))
        }
    }
}
