import CPUBackend
import NunchakuCore
import SVDQuant
import Testing
@testable import Quantizer

@Suite struct NunchakuLayerPackingTests {
    /// Byte for byte what `nunchaku.merge_safetensors` writes (Python's `json.dumps`, checked with Python 3).
    @Test func quantizationConfigMatchesNunchakusText() {
        #expect(NunchakuCheckpointMetadata.quantizationConfig(format: .int4, rank: 32)
            == #"{"method": "svdquant", "weight": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "activation": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "rank": 32}"#)
        #expect(NunchakuCheckpointMetadata.quantizationConfig(format: .nvfp4, rank: 32)
            == #"{"method": "svdquant", "weight": {"dtype": "fp4_e2m1_all", "scale_dtype": [null, "fp8_e4m3_nan"], "group_size": 16}, "activation": {"dtype": "fp4_e2m1_all", "scale_dtype": "fp8_e4m3_nan", "group_size": 16}, "rank": 32}"#)
        #expect(NunchakuCheckpointMetadata.flux(configText: "{}", format: .int4, rank: 16)["model_class"] == "NunchakuFluxTransformer2dModel")
    }

    /// The packed tensors, unpacked by SVDQuant, give back exactly the quantizer's canonical values (bf16-rounded
    /// where the checkpoint is bf16), and the CPU W4A4 layer built from them matches the runtime simulation.
    @Test(arguments: [(W4A4Format.int4, LinearInputKind.general), (.int4, .postGELU), (.nvfp4, .general)])
    func packedW4A4LayersUnpackToTheQuantizedValues(format: W4A4Format, kind: LinearInputKind) throws {
        let (input, layer) = syntheticInput(outFeatures: 256, inFeatures: 128, kind: kind)
        let quantized = try SVDQuantizer.quantize(
            input, configuration: SVDQuantConfiguration(format: format, rank: 16, smoothingGridPoints: 3, lowRankRounds: 1))
        let packed = try NunchakuLayerPacking.w4a4(quantized)
        let expectedNames = Set(["qweight", "wscales", "bias", "smooth", "smooth_orig", "lora_down", "lora_up"]
            + (format == .nvfp4 ? ["wtscale", "wcscales"] : []))
        #expect(Set(packed.keys) == expectedNames)
        func tensor(_ name: String) throws -> Tensor { try #require(packed[name]) }
        let weights = try SVDQW4A4Weights(
            name: "layer", tensors: SVDQW4A4Tensors(
                qweight: try tensor("qweight"), wscales: try tensor("wscales"), wtscale: packed["wtscale"], wcscales: packed["wcscales"],
                bias: try tensor("bias"), smooth: try tensor("smooth"), smoothOrig: try tensor("smooth_orig"),
                projDown: try tensor("lora_down"), projUp: try tensor("lora_up")),
            layout: .nunchaku, actUnsigned: quantized.activationsUnsigned)
        let canonical = weights.canonical
        func bf16(_ values: [Float]) -> [Float] { values.map(WeightQuantizer.bf16) }
        #expect(weights.actUnsigned == (format == .int4 && kind == .postGELU))
        #expect(canonical.qweight.withUnsafeBytes { Array($0) }
            == (NunchakuLayerPacking.packNibbles(NunchakuLayerPacking.nibbles(quantized.codes), rows: 256, columns: 128)).withUnsafeBytes { Array($0) })
        #expect(canonical.wscales.floats() == quantized.wscales)
        #expect(weights.wtscale == quantized.wtscale)
        #expect(canonical.smooth.floats() == quantized.smooth)
        #expect(canonical.bias?.floats() == bf16(quantized.bias))
        #expect(canonical.projDown.floats() == bf16(quantized.projDown) && canonical.projUp.floats() == bf16(quantized.projUp))
        #expect(canonical.wcscales.map { $0.floats().allSatisfy { $0 == 1 } } ?? true)

        // The kernel-faithful CPU layer on bf16 inputs against the fp32 runtime simulation of the canonical tensors.
        let rows = 16
        let x = Array(layer.evaluation.prefix(rows * 128)).map { kind == .postGELU ? gelu($0 / 8) : $0 }
        let xBF16 = Tensor.rounding(x, shape: [rows, 128], to: .bf16)
        let cpu = try SVDQW4A4Linear(weights: weights).forward(xBF16).floats()
        let simulated = try W4A4RuntimeSimulation.output(of: quantized, input: xBF16.floats(), rows: rows)
        #expect(relativeError(cpu, simulated) < 0.02, "CPU layer vs simulation: \(relativeError(cpu, simulated))")
    }

    /// adaLN layers: output channels interleaved (packed d·S + s = natural s·D + d) and 1 added to the bias of the
    /// scale chunks (1 and S−2) in bf16.
    @Test(arguments: [6, 3])
    func modulationLayersAreInterleavedWithThePlusOneFolded(chunks: Int) throws {
        let width = 64, n = chunks * width, k = 128
        var random = SeededGaussian(seed: 4)
        let weight = random.floats(n * k, scale: 0.1), bias = random.floats(n, scale: 0.3)
        let quantized = try AWQQuantizer.quantize(name: "norm", weight: weight, outFeatures: n, inFeatures: k, bias: bias)
        let packed = try NunchakuLayerPacking.awqModulation(quantized, chunks: chunks)
        #expect(Set(packed.keys) == ["qweight", "wscales", "wzeros", "bias"])
        #expect(packed["qweight"]?.dtype == .i32 && packed["qweight"]?.shape == [n / 4, k / 2])
        let packedBias = try #require(packed["bias"]).floats()
        let scaleChunks: Set = [1, chunks - 2]
        for s in 0..<chunks {
            for d in 0..<width {
                let natural = WeightQuantizer.bf16(bias[s * width + d])
                let expected = scaleChunks.contains(s) ? WeightQuantizer.bf16(natural + 1) : natural
                #expect(packedBias[d * chunks + s] == expected, "chunk \(s) channel \(d)")
            }
        }
        let packedScales = try #require(packed["wscales"]).floats()
        #expect(packedScales[1 * chunks + 2] == quantized.scales[2 * width + 1], "scales follow the interleave")
        let weights = try AWQW4A16Weights(
            name: "norm", tensors: AWQW4A16Tensors(
                qweight: try #require(packed["qweight"]), wscales: try #require(packed["wscales"]),
                wzeros: try #require(packed["wzeros"]), bias: packed["bias"]),
            layout: .nunchaku, modulation: try ModulationInterleave(chunks: chunks))
        #expect(weights.canonical.qweight.withUnsafeBytes { Array($0) }
            == (NunchakuLayerPacking.packNibbles(quantized.codes, rows: n, columns: k)).withUnsafeBytes { Array($0) })
        #expect(weights.canonical.wzeros.floats() == quantized.zeros)
    }
}
