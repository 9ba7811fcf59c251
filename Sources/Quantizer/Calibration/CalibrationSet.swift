import CPUBackend
import NunchakuCore
import SafeTensors

/// Calibration activations for the W4A4 layers of a quantization plan, keyed by the layer's Nunchaku name
/// (`transformer_blocks.0.qkv_proj`, `single_transformer_blocks.3.mlp_fc2`, …).
///
/// File format (`read(path:)`, `write(to:)`): a safetensors file with one tensor per W4A4 layer, named like the
/// layer, of shape [rows, K] (the rows are inputs the layer saw; K its input features), dtype bf16 (f32 and f16
/// are read too), and the metadata entry `format` = `nunchaku-calibration`. Post-GELU layers (`mlp_fc2`) hold the
/// GELU output itself, without Nunchaku's 0.171875 shift.
public struct CalibrationSet: Sendable {
    /// The `format` metadata value of calibration files.
    public static let formatName = "nunchaku-calibration"

    /// Layer name → its input rows.
    public var activations: [String: CalibrationActivations]

    public init(activations: [String: CalibrationActivations]) {
        self.activations = activations
    }

    /// The rows recorded by `reservoirs` (one per calibrated diffusers linear) for every W4A4 layer of `plan`,
    /// cut to the columns each layer takes.
    public init(plan: FluxQuantizationPlan, reservoirs: [String: ActivationReservoir]) throws {
        var activations: [String: CalibrationActivations] = [:]
        for layer in plan.w4a4Layers {
            guard let point = layer.calibration, let reservoir = reservoirs[point.linear] else {
                throw NunchakuError.invalidArgument(context: layer.name, reason: "no activations were recorded for this layer")
            }
            let rows = reservoir.sample
            guard let columns = point.columns else {
                activations[layer.name] = CalibrationActivations(values: rows, width: point.inputWidth)
                continue
            }
            var values: [Float] = []
            values.reserveCapacity(rows.count / point.inputWidth * columns.count)
            for start in stride(from: 0, to: rows.count, by: point.inputWidth) {
                values += rows[(start + columns.lowerBound)..<(start + columns.upperBound)]
            }
            activations[layer.name] = CalibrationActivations(values: values, width: columns.count)
        }
        self.activations = activations
    }

    /// Throws unless every W4A4 layer of `plan` has at least one row of the right width, every value is finite, and
    /// no activations name a layer the plan lacks. All problems are listed in one error.
    public func validate(against plan: FluxQuantizationPlan, source: String) throws {
        var problems: [String] = []
        let layers = plan.w4a4Layers
        let known = Set(layers.map(\.name))
        let unknown = activations.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            problems.append("\(unknown.count) name(s) that are no W4A4 layer of this model: \(Self.list(unknown))")
        }
        var missing: [String] = []
        for layer in layers {
            guard let rows = activations[layer.name] else {
                missing.append(layer.name)
                continue
            }
            if rows.width != layer.inFeatures {
                problems.append("\(layer.name) is \(rows.width) wide, the layer has K = \(layer.inFeatures)")
            } else if rows.rows == 0 || rows.values.count % rows.width != 0 {
                problems.append("\(layer.name) holds \(rows.values.count) values, not a positive number of rows")
            } else if let index = rows.values.firstIndex(where: { !$0.isFinite }) {
                problems.append("\(layer.name) element \(index) is \(rows.values[index])")
            }
        }
        if !missing.isEmpty { problems.append("\(missing.count) layer(s) missing: \(Self.list(missing))") }
        guard problems.isEmpty else {
            throw NunchakuError.invalidArgument(
                context: source, reason: "calibration activations do not match the model: \(problems.joined(separator: "; "))")
        }
    }

    /// Reads a calibration file (see the type's documentation).
    /// - Throws: `SafeTensorsError`/`NunchakuError` naming the file and tensor for an unreadable file, a wrong
    ///   `format`, or a tensor that is not a 2-D float matrix.
    public static func read(path: String) throws -> CalibrationSet {
        let file = try SafeTensorsFile(path: path)
        if let format = file.metadata?["format"], format != formatName {
            throw NunchakuError.invalidArgument(context: path, reason: "metadata format is \"\(format)\", not \"\(formatName)\"")
        }
        var activations: [String: CalibrationActivations] = [:]
        for name in file.tensorNames {
            let tensor = try file.tensor(name)
            guard tensor.rank == 2, [DType.f32, .bf16, .f16].contains(tensor.dtype) else {
                throw NunchakuError.invalidArgument(
                    context: "\(path): \(name)", reason: "expected a [rows, K] f32/bf16/f16 matrix, got \(tensor.dtype) \(tensor.shape)")
            }
            activations[name] = CalibrationActivations(values: try tensor.floatValues(context: name), width: tensor.shape[1])
        }
        return CalibrationSet(activations: activations)
    }

    /// Writes the activations as bf16 (lossless for activations of a bf16 model), with `metadata` added to the
    /// `format` entry.
    public func write(to path: String, metadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter(metadata: metadata.merging(["format": Self.formatName]) { _, format in format })
        for (name, rows) in activations {
            try writer.add(name, Tensor.rounding(rows.values, shape: [rows.rows, rows.width], to: .bf16))
        }
        try writer.write(to: path)
    }

    private static func list(_ names: [String]) -> String {
        names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", …" : "")
    }
}
