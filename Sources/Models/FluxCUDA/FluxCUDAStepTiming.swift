import CUDABackend
import NunchakuCore

/// What timed forwards of the CUDA FLUX model measured.
public struct FluxCUDAStepTiming: Sendable {
    /// GPU time of each warm-up step in milliseconds (the first one includes compiling kernels on first use).
    public let warmUpMilliseconds: [Double]
    /// GPU time of each timed step in milliseconds, in order.
    public let stepMilliseconds: [Double]
    /// The last step's `sample`.
    public let sample: Tensor

    /// The median of the timed steps.
    public var medianMilliseconds: Double {
        let sorted = stepMilliseconds.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }
}

extension FluxCUDATransformer {
    /// Runs `warmUp` steps, then `steps` timed ones on `inputs`, each bracketed by device events on the default
    /// stream (so a step's time is the GPU's, launch gaps included), and brings the last `sample` back.
    /// - Throws: `NunchakuError.invalidArgument` when `steps` is below 1; GPU errors.
    public func timeSteps(_ inputs: FluxCUDAInputs, warmUp: Int = 1, steps: Int) throws -> FluxCUDAStepTiming {
        try FluxCUDAStepTiming.measure(context: context, warmUp: warmUp, steps: steps) { try forward(inputs) }
    }
}

extension FluxCUDAGraphRunner {
    /// As `FluxCUDATransformer.timeSteps`, each step a graph replay (the input copies included in its time).
    public func timeSteps(_ inputs: FluxCUDAInputs, warmUp: Int = 1, steps: Int) throws -> FluxCUDAStepTiming {
        try FluxCUDAStepTiming.measure(context: transformer.context, warmUp: warmUp, steps: steps) { try forward(inputs) }
    }
}

extension FluxCUDAStepTiming {
    /// Times `step` (which queues one step on the default stream and returns its `sample`) as `timeSteps` describes.
    static func measure(context: CUDAContext, warmUp: Int, steps: Int, _ step: () throws -> DeviceTensor) throws -> FluxCUDAStepTiming {
        guard steps >= 1, warmUp >= 0 else {
            throw NunchakuError.invalidArgument(context: "timeSteps", reason: "\(warmUp) warm-up and \(steps) timed steps: at least one timed step is needed")
        }
        let stream = context.defaultStream
        var times: [Double] = []
        var sample: DeviceTensor?
        for _ in 0..<(warmUp + steps) {
            let start = try context.makeEvent(), end = try context.makeEvent()
            try stream.record(start)
            sample = try step()
            try stream.record(end)
            try end.synchronize()
            times.append(try end.milliseconds(since: start))
        }
        guard let sample else { throw NunchakuError.invalidArgument(context: "timeSteps", reason: "no step ran") }
        return FluxCUDAStepTiming(
            warmUpMilliseconds: Array(times.prefix(warmUp)), stepMilliseconds: Array(times.dropFirst(warmUp)),
            sample: try sample.download())
    }
}
