import CUDABackend
import NunchakuCore

/// The shapes of one set of `FluxCUDAInputs`: what a captured CUDA graph is fixed to.
public struct FluxCUDAInputShape: Sendable, Equatable, CustomStringConvertible {
    public let batch: Int
    public let imageTokens: Int
    public let textTokens: Int
    /// Whether a guidance value is given (guidance-distilled models such as FLUX.1-dev).
    public let hasGuidance: Bool

    public init(batch: Int, imageTokens: Int, textTokens: Int, hasGuidance: Bool) {
        self.batch = batch
        self.imageTokens = imageTokens
        self.textTokens = textTokens
        self.hasGuidance = hasGuidance
    }

    public var description: String {
        "batch \(batch), \(imageTokens) image + \(textTokens) text tokens\(hasGuidance ? ", guidance" : "")"
    }
}

extension FluxCUDAInputs {
    /// The shapes these inputs have.
    public var shape: FluxCUDAInputShape {
        FluxCUDAInputShape(batch: batch, imageTokens: imageTokens, textTokens: textTokens, hasGuidance: guidanceSinusoid != nil)
    }

    /// Every device tensor of the inputs, in a fixed order.
    var tensors: [DeviceTensor] {
        [hiddenStates, encoderHiddenStates, pooledProjections, timestepSinusoid] + (guidanceSinusoid.map { [$0] } ?? [])
            + [rotary.cos, rotary.sin]
    }

    /// New, uninitialised buffers of the same shapes and dtypes as `template` (on `context`'s default stream).
    init(buffersLike template: FluxCUDAInputs, context: CUDAContext) throws {
        func like(_ tensor: DeviceTensor) throws -> DeviceTensor {
            try DeviceTensor(shape: tensor.shape, dtype: tensor.dtype, context: context)
        }
        hiddenStates = try like(template.hiddenStates)
        encoderHiddenStates = try like(template.encoderHiddenStates)
        pooledProjections = try like(template.pooledProjections)
        timestepSinusoid = try like(template.timestepSinusoid)
        guidanceSinusoid = try template.guidanceSinusoid.map(like)
        rotary = FluxCUDARotary(cos: try like(template.rotary.cos), sin: try like(template.rotary.sin))
    }

    /// Queues copies of every value of `source` (same shapes) into these buffers on `stream`.
    /// - Throws: `NunchakuError.shapeMismatch` naming the first tensor whose shape differs.
    func copyValues(from source: FluxCUDAInputs, stream: CUDAStream) throws {
        let (targets, sources) = (tensors, source.tensors)
        guard shape == source.shape, targets.count == sources.count else {
            throw NunchakuError.invalidArgument(
                context: "FLUX graph inputs", reason: "captured for \(shape), given \(source.shape)")
        }
        for (target, value) in zip(targets, sources) {
            guard target.shape == value.shape, target.dtype == value.dtype else {
                throw NunchakuError.shapeMismatch(context: "FLUX graph inputs", expected: target.shape, actual: value.shape)
            }
            try stream.copy(value.byteCount, from: value.buffer, to: target.buffer)
        }
    }
}
