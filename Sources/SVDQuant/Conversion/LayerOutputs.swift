import NunchakuCore

/// What a conversion had to fill in or leave out, counted over layers, for the report.
struct ConversionNotes {
    var smoothOrigFilled = 0
    var biasFilled = 0
    var smoothOrigDropped = 0

    var messages: [String] {
        var lines: [String] = []
        if smoothOrigFilled > 0 {
            lines.append("\(smoothOrigFilled) W4A4 layer(s) had no smooth_orig: written as a copy of smooth (unused at run time; Nunchaku's strict Python loaders need the key)")
        }
        if biasFilled > 0 { lines.append("\(biasFilled) W4A4 layer(s) had no bias: written as zeros (Nunchaku files always carry one)") }
        if smoothOrigDropped > 0 { lines.append("\(smoothOrigDropped) W4A4 layer(s) lost smooth_orig, which Nunchaku-Lite has no parameter for (unused at run time)") }
        return lines
    }
}

extension ConversionTarget {
    /// The output tensors (name, tensor) of W4A4 layer `weights.name` in the lossless targets.
    func w4a4Outputs(_ weights: SVDQW4A4Weights, notes: inout ConversionNotes) throws -> [(String, Tensor)] {
        var tensors = try weights.tensors(layout: format == .canonical ? .canonical(vectorOrder: .natural) : .nunchaku)
        let half = weights.weightDType.dtype
        switch format {
        case .nunchaku:
            if tensors.smoothOrig == nil {
                tensors.smoothOrig = tensors.smooth
                notes.smoothOrigFilled += 1
            }
            if tensors.bias == nil {
                tensors.bias = Tensor(zeros: [weights.outFeatures], dtype: half)
                notes.biasFilled += 1
            }
        case .nunchakuLite:
            if tensors.smoothOrig != nil {
                tensors.smoothOrig = nil
                notes.smoothOrigDropped += 1
            }
            if weights.precision == .int4 {
                // Lite's INT4 layer has neither parameter; an INT4 wtscale is always 1 (checked when loading).
                guard tensors.wcscales == nil else {
                    throw SVDQuantCheckpointError.unsupportedConversion(
                        layer: weights.name, reason: "an INT4 layer with wcscales has no Nunchaku-Lite form (Lite's INT4 layer has no channel scales)")
                }
                tensors.wtscale = nil
            } else {
                // Lite's NVFP4 layer always has both; ones are permutation-invariant, so packed order needs no care.
                tensors.wcscales = tensors.wcscales ?? TensorValues.tensor(Array(repeating: 1, count: weights.outFeatures), shape: [weights.outFeatures], dtype: half)
                tensors.wtscale = try tensors.wtscale?.reshaped([1]) ?? TensorValues.tensor([1], shape: [1], dtype: half)
            }
        case .canonical, .dense:
            break
        }
        let prefix = outputName(weights.name)
        let roles: [(W4A4TensorRole, Tensor?)] = [
            (.qweight, tensors.qweight), (.wscales, tensors.wscales), (.wtscale, tensors.wtscale), (.wcscales, tensors.wcscales),
            (.bias, tensors.bias), (.smooth, tensors.smooth), (.smoothOrig, tensors.smoothOrig), (.projDown, tensors.projDown),
            (.projUp, tensors.projUp),
        ]
        return roles.compactMap { role, tensor in tensor.map { ("\(prefix).\(parameterNaming.parameterName(role))", $0) } }
    }

    /// The output tensors of AWQ layer `weights.name` in the lossless targets.
    func awqOutputs(_ weights: AWQW4A16Weights) throws -> [(String, Tensor)] {
        let tensors = try weights.tensors(layout: format == .canonical ? .canonical : .nunchaku)
        let prefix = outputName(weights.name)
        let roles: [(AWQTensorRole, Tensor?)] = [
            (.qweight, tensors.qweight), (.wscales, tensors.wscales), (.wzeros, tensors.wzeros), (.bias, tensors.bias),
        ]
        return roles.compactMap { role, tensor in tensor.map { ("\(prefix).\(role.parameterName)", $0) } }
    }
}
