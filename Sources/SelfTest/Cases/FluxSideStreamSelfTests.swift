import CUDABackend
import Models
import NunchakuCore

/// `flux.side_stream`: the double blocks' text-token work on a second stream (`FluxCUDATransformer.overlapsBranches`,
/// `FluxCUDAOps.concurrently`) against the same model on one stream, on `FluxSelfTests.fastModel` (sm_90+). The
/// streams run the same kernels on the same values, so every output must match bit for bit (tolerance 0; cuBLASLt's
/// algorithms are the heuristic's, so both streams' lanes pick the same ones): eager forwards (the first learns each
/// lane's layer order, the later ones prefetch), and a CUDA graph captured with the side stream forked into it,
/// replayed into a poisoned output. The time is one eager forward with the side stream; the note gives the one
/// without.
enum FluxSideStreamSelfTests {
    static let cases = [sideStream()]

    static func sideStream() -> SelfTestCase {
        SelfTestCase(kernel: "flux.side_stream", dtype: .bf16, shape: FluxSelfTests.fastModelShape, tolerance: 0) { env in
            let fast = try FluxSelfTests.fastModel(env)
            var model = fast.model
            let inputs = fast.inputs
            model.fastEngine?.tunesGEMMs = false
            model.overlapsBranches = false
            let oneStream = try env.download(try model.forward(inputs)).values
            let oneStreamMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            model.overlapsBranches = true
            var comparison = SelfTestComparison()
            for _ in 0..<3 { try comparison.compare(try env.download(try model.forward(inputs)), with: oneStream) }
            let runner = try FluxCUDAGraphRunner(transformer: model, inputs: inputs)
            try env.poison(runner.output)
            try comparison.compare(try env.download(try runner.forward(inputs)), with: oneStream)
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            let note = String(format: "two streams vs one (%.2f ms on one stream), eager and graph", oneStreamMilliseconds)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, note: note)
        }
    }
}
