import CUDABackend
import Foundation
import NunchakuCore

/// The FLUX transformer step as a CUDA graph: one `forward` captured for fixed input shapes, replayed with new input
/// values at the cost of one launch instead of a few thousand.
///
/// The runner owns a set of input buffers and an output buffer. `forward` copies the new inputs into the input
/// buffers (device to device, on the default stream), launches the graph, and returns the output buffer, which the
/// next `forward` overwrites. Before capturing it runs one eager forward, so kernels are compiled and cuBLASLt plans
/// made outside the capture.
///
/// What the graph depends on:
/// - the input shapes (`shape`): other shapes are refused; make another runner for them;
/// - the model's LoRAs: adding, re-weighting or removing one replaces layers (new weights at new addresses), so the
///   next `forward` sees `transformer.loras.revision` changed and captures again (`captureCount` counts captures);
///   `invalidate()` forces that for any other change;
/// - the numerics: fixed by the transformer (`transformer.numerics`); other numerics are another transformer and
///   so another runner.
///
/// Memory: the graph keeps its own copy of one forward's intermediates (graph-owned memory, reused at every replay),
/// besides what the eager warm-up left cached in the context's pool.
public final class FluxCUDAGraphRunner: @unchecked Sendable {
    public let transformer: FluxCUDATransformer
    /// The input shapes the graph was captured for.
    public let shape: FluxCUDAInputShape
    private let inputs: FluxCUDAInputs
    /// Where every replay writes `sample`.
    public let output: DeviceTensor
    private let lock = NSLock()
    private var graph: CUDAGraph?
    private var capturedRevision = -1
    private var captures = 0

    /// Captures one forward on inputs shaped like `template` (its values are copied in and used for the eager
    /// warm-up and the capture).
    /// - Throws: `CUDAError.graphCapture` naming the call that could not be captured; GPU errors.
    public init(transformer: FluxCUDATransformer, inputs template: FluxCUDAInputs) throws {
        let context = transformer.context
        self.transformer = transformer
        shape = template.shape
        let buffers = try FluxCUDAInputs(buffersLike: template, context: context)
        try buffers.copyValues(from: template, stream: context.defaultStream)
        inputs = buffers
        // The eager warm-up; its sample is dropped here, before the capture (a buffer dropped during a capture is
        // kept alive for the graph's lifetime).
        let (sampleShape, sampleDType) = try {
            let sample = try transformer.forward(buffers)
            return (sample.shape, sample.dtype)
        }()
        output = try DeviceTensor(shape: sampleShape, dtype: sampleDType, context: context)
        try lock.withLock { try capture(warmedUp: true) }
    }

    /// How many times the step has been captured (1 after `init`; one more after each LoRA change or `invalidate`).
    public var captureCount: Int { lock.withLock { captures } }

    /// Drops the graph: the next `forward` warms up and captures again.
    public func invalidate() {
        lock.withLock { graph = nil }
    }

    /// One step on `inputs` (shapes as captured): `sample` `[B, N, patch²·out_channels]`, bf16, in `output`, valid
    /// until the next `forward`. Queued on the context's default stream; downloading the result waits for it.
    /// - Throws: `NunchakuError.invalidArgument` naming the captured and given shapes; capture and GPU errors.
    public func forward(_ inputs: FluxCUDAInputs) throws -> DeviceTensor {
        try lock.withLock {
            let stream = transformer.context.defaultStream
            try self.inputs.copyValues(from: inputs, stream: stream)
            if graph == nil || capturedRevision != transformer.loras.revision { try capture(warmedUp: false) }
            guard let graph else { throw CUDAError.graphCapture(context: label, reason: "no graph after capturing") }
            try graph.launch(on: stream)
            return output
        }
    }

    /// One step on host arguments read by their diffusers names (see `FluxCUDAInputs`); returns `sample` (bf16).
    public func forward(inputs: any TensorProvider) throws -> Tensor {
        let uploaded = try FluxCUDAInputs(config: transformer.config, context: transformer.context, inputs: inputs)
        return try forward(uploaded).download()
    }

    private var label: String { "the FLUX transformer step (\(shape))" }

    /// Captures the step (after an eager forward unless `warmedUp`); the caller holds `lock`.
    private func capture(warmedUp: Bool) throws {
        graph = nil   // frees what the old graph kept alive before the new one allocates
        let revision = transformer.loras.revision
        if !warmedUp { _ = try transformer.forward(inputs) }
        let (transformer, inputs, output, stream) = (transformer, inputs, output, transformer.context.defaultStream)
        graph = try CUDAGraph(capturing: label, context: transformer.context, stream: stream) {
            let sample = try transformer.forward(inputs)
            try stream.copy(output.byteCount, from: sample.buffer, to: output.buffer)
        }
        capturedRevision = revision
        captures += 1
    }
}
