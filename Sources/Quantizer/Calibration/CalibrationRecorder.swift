import CPUBackend
import Models
import NunchakuCore

/// A `LinearLayerFactory` that builds every linear with `base` and, for the linears in `reservoirs`, wraps it so
/// that each forward first offers its input rows to that linear's reservoir. The model code stays unchanged.
public struct CalibrationRecorder: LinearLayerFactory {
    let base: any LinearLayerFactory
    /// Diffusers linear name → the reservoir of its input rows.
    public let reservoirs: [String: ActivationReservoir]

    /// Records the inputs of `inputs` (linear name → input width), keeping at most `rowsPerLayer` random rows each.
    public init(inputs: [String: Int], rowsPerLayer: Int, seed: UInt64, base: any LinearLayerFactory) {
        self.base = base
        var reservoirs: [String: ActivationReservoir] = [:]
        for (name, width) in inputs {
            reservoirs[name] = ActivationReservoir(capacity: rowsPerLayer, width: width, seed: seed ^ ContentHash.of(name))
        }
        self.reservoirs = reservoirs
    }

    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let layer = try base.makeLinear(spec, computeDType: computeDType, weights: weights)
        guard let reservoir = reservoirs[spec.name] else { return layer }
        guard reservoir.width == spec.inFeatures else {
            throw NunchakuError.invalidArgument(
                context: spec.name,
                reason: "the model feeds it \(spec.inFeatures) features, the calibration plan expects \(reservoir.width)")
        }
        return RecordingLinear(base: layer, reservoir: reservoir)
    }
}

/// A linear that hands its input rows to a reservoir, then runs the wrapped layer.
struct RecordingLinear: LinearLayer {
    let base: any LinearLayer
    let reservoir: ActivationReservoir

    var name: String { base.name }
    var inFeatures: Int { base.inFeatures }
    var outFeatures: Int { base.outFeatures }

    func forward(_ x: Tensor) throws -> Tensor {
        reservoir.add(try x.floatValues(context: name))
        return try base.forward(x)
    }
}

/// Runs the BF16 diffusers model on forward inputs and keeps a random subset of each W4A4 layer's input rows.
public enum CalibrationCollection {
    /// Default rows kept per layer.
    public static let defaultRowsPerLayer = 256

    /// One bf16 forward of `model` per entry of `inputs` (diffusers argument names, as `nunchaku run-transformer`
    /// reads them), recording at most `rowsPerLayer` random input rows of every W4A4 layer.
    /// - Parameter progress: called after each forward with the number done.
    /// - Throws: the model's errors for inputs that do not fit its config.
    public static func collect(
        model: FluxSourceModel, inputs: [any TensorProvider], rowsPerLayer: Int = defaultRowsPerLayer, seed: UInt64 = 0xCA11B,
        progress: (Int) -> Void = { _ in }
    ) throws -> CalibrationSet {
        try collect(model: model, rowsPerLayer: rowsPerLayer, seed: seed) { transformer in
            for (index, arguments) in inputs.enumerated() {
                _ = try transformer.forward(inputs: arguments)
                progress(index + 1)
            }
        }
    }

    /// Builds the BF16 diffusers model with every W4A4 layer's input recorded (at most `rowsPerLayer` random rows
    /// each) and hands it to `drive`, which runs it as often as it likes (e.g. a whole text-to-image pipeline's
    /// denoising loops); then gathers the recorded rows.
    /// - Throws: the model's loading errors, and whatever `drive` throws.
    public static func collect(
        model: FluxSourceModel, rowsPerLayer: Int = defaultRowsPerLayer, seed: UInt64 = 0xCA11B,
        drive: (FluxTransformer) throws -> Void
    ) throws -> CalibrationSet {
        guard rowsPerLayer > 0 else {
            throw NunchakuError.invalidArgument(context: "calibration rows", reason: "must be positive, got \(rowsPerLayer)")
        }
        let recorder = CalibrationRecorder(
            inputs: model.plan.calibrationInputs, rowsPerLayer: rowsPerLayer, seed: seed, base: MappedDenseLinearFactory())
        let transformer = try FluxTransformer(
            config: model.config, weights: model.weights, layout: .diffusers, computeDType: .bf16,
            linearFactory: recorder, source: model.source)
        try drive(transformer)
        return try CalibrationSet(plan: model.plan, reservoirs: recorder.reservoirs)
    }
}
