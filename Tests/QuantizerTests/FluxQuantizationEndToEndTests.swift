import CPUBackend
import CUDABackend
import Foundation
import Models
import NunchakuCore
import SafeTensors
import SVDQuant
import Testing
@testable import Quantizer

/// A tiny random FLUX quantized end to end: calibration recorded from its own inputs, the Nunchaku file written,
/// its metadata, names, shapes and dtypes checked, its layers checked against an independent dense conversion
/// (Models' `FluxNunchakuLayout`), and its output run through our transformer against BF16.
@Suite(.serialized) struct FluxQuantizationEndToEndTests {
    /// A quick configuration for debug builds.
    static func configuration(_ format: W4A4Format, grid: Int = 2) -> SVDQuantConfiguration {
        SVDQuantConfiguration(
            format: format, rank: 16, smoothingGridPoints: grid, lowRankRounds: 1, objectiveRows: 32,
            svd: RandomizedSVDOptions(oversampling: 4, powerIterations: 0), searchPowerIterations: 0)
    }

    @Test(arguments: W4A4Format.allCases)
    func quantizedModelFollowsNunchakusFormatAndStaysCloseToBF16(format: W4A4Format) throws {
        let model = try TinyFluxModel()
        defer { model.remove() }
        let inputs = try (0..<3).map { try model.writeInputs(name: "inputs\($0)", seed: UInt64(20 + $0), timestep: [0.9, 0.5, 0.3][$0]) }
        let source = try FluxSourceModel(path: model.folder)
        let calibration = try CalibrationCollection.collect(
            model: source, inputs: inputs.prefix(2).map { try SafeTensorsCheckpoint(path: $0) }, rowsPerLayer: 24)
        let output = model.folder + "/svdq-\(format)_r16-tiny.safetensors"
        let job = try FluxQuantizationJob(model: source, output: output, configuration: Self.configuration(format), calibration: calibration)
        let outcomes = try job.run()
        #expect(outcomes.count == source.plan.layers.count && outcomes.allSatisfy { !$0.reused })
        #expect(outcomes.map(\.index) == Array(source.plan.layers.indices), "one outcome per layer, in plan order")
        #expect(!FileManager.default.fileExists(atPath: job.workFolder.path), "the work folder is removed at the end")

        let file = try SafeTensorsFile(path: output)
        try checkMetadata(file, model: model, format: format)
        try checkNamesShapesAndDTypes(file, plan: source.plan, format: format)
        try checkSharedSmoothing(file, plan: source.plan)
        try checkAgainstDenseNunchakuLayout(output, source: source, format: format)

        let evaluation = try QuantizedFluxEvaluation(quantizedCheckpoint: output, reference: source)
        let error = try evaluation.relativeError(inputs: SafeTensorsCheckpoint(path: inputs[2]))
        // Random Gaussian layers have no low-rank structure: each 4-bit layer is ~10% off, the output ~5% (measured
        // 0.057 INT4, 0.054 NVFP4). A layer read back wrongly would give errors near 1.
        #expect(error > 1e-3 && error < 0.1, "output relative error \(error) against BF16 (\(format))")
    }

    /// Each single block's `qkv_proj` and `mlp_fc1` carry one smoothing vector (so the fast CUDA path shares their
    /// input pass); `--separate-smoothing` (`sharedSmoothing` false) quantizes every layer on its own.
    private func checkSharedSmoothing(_ file: SafeTensorsFile, plan: FluxQuantizationPlan) throws {
        #expect(plan.sharedInputGroups.count == plan.config.numSingleLayers)
        for group in plan.sharedInputGroups {
            let names = group.map { plan.layers[$0].name }
            #expect(names.map { $0.components(separatedBy: ".").last! } == ["qkv_proj", "mlp_fc1"])
            for tensor in ["smooth", "smooth_orig"] {
                #expect(try file.tensor("\(names[0]).\(tensor)").floats() == file.tensor("\(names[1]).\(tensor)").floats(), "\(names) \(tensor)")
            }
        }
    }

    @Test func sharedInputLayersAreOneUnitOfWorkUnlessSmoothedSeparately() throws {
        let model = try TinyFluxModel()
        defer { model.remove() }
        let source = try FluxSourceModel(path: model.folder)
        let plan = source.plan
        var configuration = Self.configuration(.int4)
        let shared = try FluxQuantizationJob(model: source, output: model.folder + "/out.safetensors", configuration: configuration, calibration: nil)
        #expect(shared.quantizationUnits.count == plan.layers.count - plan.sharedInputGroups.count)
        #expect(plan.sharedInputGroups.allSatisfy { shared.quantizationUnits.contains($0) })
        #expect(shared.quantizationUnits.flatMap { $0 } == Array(plan.layers.indices))
        configuration.sharedSmoothing = false
        let separate = try FluxQuantizationJob(model: source, output: model.folder + "/out.safetensors", configuration: configuration, calibration: nil)
        #expect(separate.quantizationUnits == plan.layers.indices.map { [$0] })
    }

    private func checkMetadata(_ file: SafeTensorsFile, model: TinyFluxModel, format: W4A4Format) throws {
        let metadata = try #require(file.metadata)
        #expect(metadata["config"] == model.configText())
        #expect(metadata["model_class"] == "NunchakuFluxTransformer2dModel")
        #expect(metadata["quantization_config"] == NunchakuCheckpointMetadata.quantizationConfig(format: format, rank: 16))
        let checkpoint = try SafeTensorsCheckpoint(path: file.path)
        guard case let .nunchakuMerged(parameters, modelClass) = try detectCheckpointFormat(checkpoint) else {
            Issue.record("not detected as a Nunchaku merged file")
            return
        }
        #expect(parameters.precision == (format == .int4 ? .int4 : .nvfp4))
        #expect(parameters.groupSize == format.groupSize && parameters.rank == 16)
        #expect(modelClass == "NunchakuFluxTransformer2dModel")
    }

    private func checkNamesShapesAndDTypes(_ file: SafeTensorsFile, plan: FluxQuantizationPlan, format: W4A4Format) throws {
        var expected: [String: (shape: [Int], dtype: SafeTensorsDType)] = [:]
        let weightScale: SafeTensorsDType = format == .int4 ? .bf16 : .f8e4m3
        for layer in plan.layers {
            let (n, k, p) = (layer.outFeatures, layer.inFeatures, layer.name)
            switch layer.kind {
            case .w4a4:
                expected["\(p).qweight"] = ([n, k / 2], .i8)
                expected["\(p).wscales"] = ([k / format.groupSize, n], weightScale)
                expected["\(p).bias"] = ([n], .bf16)
                expected["\(p).smooth"] = ([k], .bf16)
                expected["\(p).smooth_orig"] = ([k], .bf16)
                expected["\(p).lora_down"] = ([k, 16], .bf16)
                expected["\(p).lora_up"] = ([n, 16], .bf16)
                if format == .nvfp4 {
                    expected["\(p).wtscale"] = ([1], .bf16)
                    expected["\(p).wcscales"] = ([n], .bf16)
                }
            case .awqModulation:
                expected["\(p).qweight"] = ([n / 4, k / 2], .i32)
                expected["\(p).wscales"] = ([k / 64, n], .bf16)
                expected["\(p).wzeros"] = ([k / 64, n], .bf16)
                expected["\(p).bias"] = ([n], .bf16)
            }
        }
        let d = plan.config.innerDim
        for (_, to) in plan.renamedTensors { expected[to] = ([plan.config.attentionHeadDim], .bf16) }
        for (name, shape) in [("x_embedder.weight", [d, TinyFluxModel.inChannels]), ("proj_out.weight", [TinyFluxModel.inChannels, d]),
                              ("norm_out.linear.weight", [2 * d, d]), ("time_text_embed.guidance_embedder.linear_1.weight", [d, 256])] {
            expected[name] = (shape, .bf16)
        }
        let infos = Dictionary(uniqueKeysWithValues: file.tensorInfos.map { ($0.name, $0) })
        for (name, entry) in expected {
            let info = try #require(infos[name], "missing \(name)")
            #expect(info.shape == entry.shape && info.dtype == entry.dtype, "\(name): \(info.dtype) \(info.shape)")
        }
        let blockNames = Set(file.tensorNames.filter(FluxQuantizationPlan.isBlockTensor))
        #expect(blockNames == Set(expected.keys.filter(FluxQuantizationPlan.isBlockTensor)))
        #expect(file.tensorNames.filter { !FluxQuantizationPlan.isBlockTensor($0) }.count == 20, "the 10 BF16 linears outside the blocks")
        #expect(file.tensorInfos.allSatisfy { ![.f32, .f16].contains($0.dtype) }, "16-bit tensors are BF16")
    }

    /// Every layer of the file, unpacked by SVDQuant's layouts, against Models' dense diffusers → Nunchaku
    /// conversion of the same weights (fused qkv, split proj_out, interleaved adaLN with the +1 folded).
    private func checkAgainstDenseNunchakuLayout(_ output: String, source: FluxSourceModel, format: W4A4Format) throws {
        let dense = try FluxNunchakuLayout.convert(diffusers: source.weights, config: source.config)
        let file = try SafeTensorsCheckpoint(path: output)
        var loaded: [String: SVDQW4A4Weights] = [:]
        defer {
            // The fast CUDA path's load-time decision (CUDAW4A4FastSharedInput, in the order the engine runs them)
            // accepts each single block's pair as one shared input pass.
            for group in source.plan.sharedInputGroups {
                let names = group.map { source.plan.layers[$0].name }
                let pair = [names[1], names[0]].compactMap { loaded[$0] }
                #expect(pair.count == 2 && CUDAW4A4FastSharedInput.canShare(pair, type: .bf16), "\(names)")
            }
        }
        func tensor(_ name: String) throws -> Tensor { try file.tensor(name) }
        for layer in source.plan.layers {
            let p = layer.name
            let weight = try #require(dense["\(p).weight"]).floats(), bias = try #require(dense["\(p).bias"]).floats()
            switch layer.kind {
            case let .w4a4(kind):
                let tensors = SVDQW4A4Tensors(
                    qweight: try tensor("\(p).qweight"), wscales: try tensor("\(p).wscales"),
                    wtscale: file.contains("\(p).wtscale") ? try tensor("\(p).wtscale") : nil,
                    wcscales: file.contains("\(p).wcscales") ? try tensor("\(p).wcscales") : nil,
                    bias: try tensor("\(p).bias"), smooth: try tensor("\(p).smooth"), smoothOrig: try tensor("\(p).smooth_orig"),
                    projDown: try tensor("\(p).lora_down"), projUp: try tensor("\(p).lora_up"))
                let weights = try SVDQW4A4Weights(
                    name: p, tensors: tensors, layout: .nunchaku, actUnsigned: format == .int4 && kind == .postGELU)
                loaded[p] = weights
                // A wrong permutation, fusion or split would give errors near 1 or more.
                let effective = weights.effectiveWeight()
                let weightError = Comparison.relativeError(effective, weight)
                #expect(weightError < 0.3, "\(p): effective weight off by \(weightError)")
                // Post-GELU INT4 layers: stored bias b − c·ΣW + c·ΣL, so effectiveBias = b + c·Σ(W_eff − W) per row.
                let shift: Float = weights.actUnsigned ? 0.171875 : 0
                let k = layer.inFeatures, effectiveBias = weights.effectiveBias()
                let biasError = (0..<layer.outFeatures).map { row -> Float in
                    let drift = (0..<k).reduce(Float(0)) { $0 + effective[row * k + $1] - weight[row * k + $1] }
                    return abs(effectiveBias[row] - shift * drift - bias[row])
                }.max() ?? 0
                #expect(biasError < 4e-3, "\(p): effective bias off by \(biasError)")
                #expect(weights.canonical.smooth.floats() == (try #require(weights.canonical.smoothOrig)).floats())
            case .awqModulation:
                // Nunchaku's order on both sides: codes unpacked without undoing the interleave.
                let codes = try NunchakuAWQLayout.unpackWeight(try tensor("\(p).qweight"))
                let scales = try tensor("\(p).wscales").floats(), zeros = try tensor("\(p).wzeros").floats()
                let n = layer.outFeatures, k = layer.inFeatures
                var dequantized = [Float](repeating: 0, count: n * k)
                codes.withUnsafeBytes { bytes in
                    for row in 0..<n {
                        for column in 0..<k {
                            let byte = bytes[(row * k + column) / 2]
                            let code = Float(column % 2 == 0 ? byte & 0xF : byte >> 4)
                            dequantized[row * k + column] = code * scales[(column / 64) * n + row] + zeros[(column / 64) * n + row]
                        }
                    }
                }
                #expect(Comparison.relativeError(dequantized, weight) < 0.1, "\(p): AWQ weight")
                #expect(try tensor("\(p).bias").floats() == bias, "\(p): interleaved bias with the folded +1")
            }
        }
    }

    /// An interrupted run resumes from its shards; shards made with other settings are redone; the result equals an
    /// uninterrupted run byte for byte.
    @Test func interruptedRunsResumeOnlyWithMatchingSettings() throws {
        struct Interruption: Error {}
        let model = try TinyFluxModel(doubleBlocks: 0, singleBlocks: 1)
        defer { model.remove() }
        let source = try FluxSourceModel(path: model.folder)
        let output = model.folder + "/resumed.safetensors"
        func job(grid: Int) throws -> FluxQuantizationJob {
            try FluxQuantizationJob(model: source, output: output, configuration: Self.configuration(.int4, grid: grid), calibration: nil)
        }
        func interrupt(after count: Int) -> (FluxQuantizationEvent) throws -> Void {
            { event in if case let .layerFinished(outcome) = event, outcome.index + 1 == count { throw Interruption() } }
        }
        var reused: [Bool] = []
        func record(_ event: FluxQuantizationEvent) { if case let .layerFinished(outcome) = event { reused.append(outcome.reused) } }

        // Layers: norm.linear (AWQ), qkv_proj, mlp_fc1, out_proj, mlp_fc2.
        #expect(throws: Interruption.self) { try job(grid: 2).run(progress: interrupt(after: 3)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: job(grid: 2).workFolder.path).count == 3)
        #expect(throws: Interruption.self) {
            try job(grid: 3).run { event in record(event); try interrupt(after: 2)(event) }
        }
        #expect(reused == [true, false], "a different smoothing grid redoes the W4A4 layers, not the AWQ one")
        reused = []
        let outcomes = try job(grid: 3).run(progress: record)
        #expect(reused == [true, true, true, false, false],
                "qkv_proj and mlp_fc1 share their smoothing, so the interrupted run made both with the new grid")
        #expect(outcomes.map(\.layer.name) == ["norm.linear", "qkv_proj", "mlp_fc1", "out_proj", "mlp_fc2"].map {
            "single_transformer_blocks.0.\($0)"
        })

        let straight = model.folder + "/straight.safetensors"
        _ = try FluxQuantizationJob(model: source, output: straight, configuration: Self.configuration(.int4, grid: 3), calibration: nil).run()
        #expect(FileManager.default.contents(atPath: output) == FileManager.default.contents(atPath: straight))
    }
}
