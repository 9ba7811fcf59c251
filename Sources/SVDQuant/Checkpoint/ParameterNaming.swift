/// The tensors of one SVDQuant W4A4 linear, by role (research/nunchaku-internals.md §1.2).
public enum W4A4TensorRole: String, Sendable, CaseIterable {
    case qweight, wscales, wtscale, wcscales, bias, smooth, smoothOrig, projDown, projUp

    /// The roles every checkpoint layer must have.
    public static let required: Set<W4A4TensorRole> = [.qweight, .wscales, .smooth, .projDown, .projUp]
}

/// The tensors of one AWQ W4A16 linear, by role (research/nunchaku-internals.md §1.3).
public enum AWQTensorRole: String, Sendable, CaseIterable {
    case qweight, wscales, wzeros, bias

    /// The roles every checkpoint layer must have.
    public static let required: Set<AWQTensorRole> = [.qweight, .wscales, .wzeros]

    /// The parameter name in a checkpoint (identical in both naming schemes).
    public var parameterName: String { rawValue }
}

/// How a checkpoint names the parameters of its W4A4 layers (research/nunchaku-internals.md §1.1c).
public enum SVDQuantParameterNaming: String, Sendable, CaseIterable {
    /// Nunchaku's C++ engine (FLUX, SANA files): `smooth`, `smooth_orig`, `lora_down`, `lora_up`.
    case cpp
    /// Nunchaku's Python modules (Z-Image, Qwen-Image files, Nunchaku-Lite): `smooth_factor`, `smooth_factor_orig`,
    /// `proj_down`, `proj_up`.
    case python

    /// The parameter name of `role` under this scheme.
    public func parameterName(_ role: W4A4TensorRole) -> String {
        switch (role, self) {
        case (.qweight, _): "qweight"
        case (.wscales, _): "wscales"
        case (.wtscale, _): "wtscale"
        case (.wcscales, _): "wcscales"
        case (.bias, _): "bias"
        case (.smooth, .cpp): "smooth"
        case (.smooth, .python): "smooth_factor"
        case (.smoothOrig, .cpp): "smooth_orig"
        case (.smoothOrig, .python): "smooth_factor_orig"
        case (.projDown, .cpp): "lora_down"
        case (.projDown, .python): "proj_down"
        case (.projUp, .cpp): "lora_up"
        case (.projUp, .python): "proj_up"
        }
    }

    /// The role a parameter name stands for under this scheme, or nil when the scheme has no such name.
    public func role(ofParameter name: String) -> W4A4TensorRole? {
        W4A4TensorRole.allCases.first { parameterName($0) == name }
    }

    /// The scheme whose names include `name` but not the other scheme's (`lora_down` → C++, `proj_down` → Python);
    /// nil for names both share (`qweight`, `bias`, …) or neither has.
    static func scheme(distinguishedBy name: String) -> SVDQuantParameterNaming? {
        let matches = allCases.filter { $0.role(ofParameter: name) != nil }
        return matches.count == 1 ? matches[0] : nil
    }
}
