import NunchakuCore

/// The tensors of one AWQ W4A16 linear by role. Shapes: `qweight` int32 [N/4, K/2] (Nunchaku) or u8 [N, K/2]
/// (canonical), `wscales` and `wzeros` [K/64, N], `bias` [N].
public struct AWQW4A16Tensors: Sendable {
    public var qweight: Tensor
    public var wscales: Tensor
    /// Stores −(zero point · scale), so a weight is `q · wscales + wzeros`.
    public var wzeros: Tensor
    public var bias: Tensor?

    public init(qweight: Tensor, wscales: Tensor, wzeros: Tensor, bias: Tensor?) {
        self.qweight = qweight
        self.wscales = wscales
        self.wzeros = wzeros
        self.bias = bias
    }
}

/// The memory layout of an AWQ layer's tensors.
public enum AWQW4A16Layout: Sendable, Equatable {
    /// TinyChat interleave-4 `qweight`; output channels in the packed (interleaved) order when the layer has a
    /// `ModulationInterleave`.
    case nunchaku
    /// u8 [N, K/2] codes (low nibble = even k), every tensor in natural output-channel order.
    case canonical
}

/// The validated weights of one AWQ W4A16 linear (group 64), canonical layout, natural output-channel order.
///
/// For adaLN modulation layers (`modulation` set) the bias keeps Nunchaku's folded "+1" on the scale chunks
/// (`foldedScaleChunks`): the layer's outputs for those chunks are `1 + scale`, to be used as `x·scale + shift`.
/// The fold is kept because the checkpoint only holds the rounded sum `bias + 1`.
public struct AWQW4A16Weights: Sendable {
    public let name: String
    public let outFeatures: Int
    public let inFeatures: Int
    /// Inputs per quantization group (fixed by the kernel).
    public let groupSize = 64
    /// The 16-bit type of the scales, zeros and bias.
    public let weightDType: ActivationDType
    /// How Nunchaku interleaves the output channels (adaLN modulation layers), or nil for a plain layer.
    public let modulation: ModulationInterleave?
    public let canonical: AWQW4A16Tensors

    /// The output chunks (of `modulation.chunks`) whose bias includes the folded +1; empty for plain layers.
    public var foldedScaleChunks: [Int] { modulation?.scaleChunks ?? [] }

    /// Validates and stores one layer's tensors given in `layout`.
    /// - Throws: `NunchakuError` naming `name.<tensor>` for wrong shapes or dtypes, K not a multiple of 64,
    ///   N not a multiple of 4 (or of the modulation chunk count), or non-finite scales, zeros or bias.
    public init(name: String, tensors: AWQW4A16Tensors, layout: AWQW4A16Layout, modulation: ModulationInterleave? = nil) throws {
        func label(_ tensor: String) -> String { "\(name).\(tensor)" }
        guard let weightDType = ActivationDType(tensors.wscales.dtype) else {
            throw NunchakuError.dtypeMismatch(context: label("wscales"), expected: [.bf16, .f16], actual: tensors.wscales.dtype)
        }
        let codes: Tensor
        switch layout {
        case .nunchaku: codes = try NunchakuAWQLayout.unpackWeight(tensors.qweight, name: label("qweight"))
        case .canonical:
            try LayoutCheck.dtype(tensors.qweight, [.u8, .i8], label("qweight"))
            codes = try TensorValues.reinterpreted(tensors.qweight, as: .u8)
        }
        let (n, halfK) = try LayoutCheck.matrix(codes, label("qweight"))
        let k = 2 * halfK
        try LayoutCheck.multiple(n, of: 4, "N", label("qweight"))
        try LayoutCheck.multiple(k, of: 64, "K", label("qweight"))
        if let modulation, n % modulation.chunks != 0 {
            throw NunchakuError.invalidArgument(
                context: name, reason: "N = \(n) is not a multiple of the \(modulation.chunks) modulation chunks")
        }
        for (tensor, tensorName, shape) in [
            (tensors.wscales, "wscales", [k / 64, n]), (tensors.wzeros, "wzeros", [k / 64, n]), (tensors.bias, "bias", [n]),
        ] {
            guard let tensor else { continue }
            try LayoutCheck.shape(tensor, shape, label(tensorName))
            try LayoutCheck.dtype(tensor, [weightDType.dtype], label(tensorName))
            try WeightValidation.finite(tensor, label(tensorName))
        }
        let packed = AWQW4A16Tensors(qweight: codes, wscales: tensors.wscales, wzeros: tensors.wzeros, bias: tensors.bias)
        self.name = name
        self.outFeatures = n
        self.inFeatures = k
        self.weightDType = weightDType
        self.modulation = modulation
        self.canonical = layout == .nunchaku ? Self.reorderOutputs(packed, modulation, toNatural: true) : packed
    }

    /// The layer's tensors in `layout` (bit-exact inverse of the conversion done at construction).
    public func tensors(layout: AWQW4A16Layout) throws -> AWQW4A16Tensors {
        guard layout == .nunchaku else { return canonical }
        let reordered = Self.reorderOutputs(canonical, modulation, toNatural: false)
        return AWQW4A16Tensors(
            qweight: try NunchakuAWQLayout.packWeight(reordered.qweight, name: "\(name).qweight"),
            wscales: reordered.wscales, wzeros: reordered.wzeros, bias: reordered.bias)
    }

    /// Moves output channels between the interleaved (packed) and natural orders: qweight rows, scale and zero
    /// columns, bias elements.
    private static func reorderOutputs(
        _ tensors: AWQW4A16Tensors, _ modulation: ModulationInterleave?, toNatural: Bool
    ) -> AWQW4A16Tensors {
        guard let modulation else { return tensors }
        let n = tensors.qweight.shape[0], halfK = tensors.qweight.shape[1]
        let direction: ElementPermutation.Direction = toNatural ? .unpack : .pack
        // Natural channel c ↔ packed channel packedChannel(c): the `.pack` direction sends canonical → packed.
        let qweight = ElementPermutation.apply(
            tensors.qweight, shape: tensors.qweight.shape, dtype: .u8, rows: n, direction: direction
        ) { modulation.packedChannel($0 / halfK, outputs: n) * halfK + $0 % halfK }
        func columns(_ tensor: Tensor) -> Tensor {
            ElementPermutation.apply(tensor, shape: tensor.shape, dtype: tensor.dtype, rows: tensor.shape[0], direction: direction) {
                ($0 / n) * n + modulation.packedChannel($0 % n, outputs: n)
            }
        }
        return AWQW4A16Tensors(
            qweight: qweight, wscales: columns(tensors.wscales), wzeros: columns(tensors.wzeros),
            bias: tensors.bias.map { bias in
                ElementPermutation.apply(bias, shape: [n], dtype: bias.dtype, rows: 1, direction: direction) {
                    modulation.packedChannel($0, outputs: n)
                }
            })
    }
}
