import NunchakuCore

extension ConversionTarget {
    /// W4A4 layer `weights.name` as a dense linear (lossy): `<name>.weight` = W_eff [N, K] and `<name>.bias` = the
    /// dense bias, which for unsigned-activation layers includes the kernel's shift term
    /// (research/nunchaku-internals.md §2.9). The bias is written when the layer has one or needs the shift term.
    func denseOutputs(_ weights: SVDQW4A4Weights, dtype: DType) -> [(String, Tensor)] {
        let (n, k) = (weights.outFeatures, weights.inFeatures)
        let (weight, bias) = weights.denseEquivalent()
        let prefix = outputName(weights.name)
        var outputs = [("\(prefix).weight", TensorValues.tensor(weight, shape: [n, k], dtype: dtype))]
        if weights.canonical.bias != nil || weights.actUnsigned {
            outputs.append(("\(prefix).bias", TensorValues.tensor(bias, shape: [n], dtype: dtype)))
        }
        return outputs
    }

    /// AWQ layer `weights.name` as a dense linear: `q · scale + zero` and the bias, output channels in the file's
    /// order (Nunchaku's adaLN layers stay interleaved, with the folded +1 in the bias).
    func denseOutputs(_ weights: AWQW4A16Weights, dtype: DType) -> [(String, Tensor)] {
        let prefix = outputName(weights.name)
        var outputs = [("\(prefix).weight", TensorValues.tensor(weights.dequantizedWeight(), shape: [weights.outFeatures, weights.inFeatures], dtype: dtype))]
        if let bias = weights.canonical.bias {
            outputs.append(("\(prefix).bias", TensorValues.tensor(TensorValues.floats(bias), shape: [weights.outFeatures], dtype: dtype)))
        }
        return outputs
    }
}
