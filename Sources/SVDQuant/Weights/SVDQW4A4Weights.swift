import NunchakuCore

/// The validated weights of one SVDQuant W4A4 linear, held in the canonical layout with natural channel order.
///
/// Build it from a checkpoint's tensors in any layout (`init(name:tensors:layout:actUnsigned:)`), read them back in
/// any layout (`tensors(layout:)`). Construction checks every shape, dtype and scale and throws an error naming the
/// layer and the tensor.
public struct SVDQW4A4Weights: Sendable {
    /// The layer's name in the checkpoint (used in errors).
    public let name: String
    public let precision: SVDQuantPrecision
    /// Whether activations are quantized unsigned after adding 0.171875 (INT4 layers fed by GELU: FLUX `mlp_fc2`).
    public let actUnsigned: Bool
    /// N.
    public let outFeatures: Int
    /// K.
    public let inFeatures: Int
    /// R, a multiple of 16 (0 when the layer has no low-rank branch).
    public let rank: Int
    /// The 16-bit type of `smooth`, `bias`, `wcscales`, the projections and (INT4) the group scales.
    public let weightDType: ActivationDType
    /// The per-tensor NVFP4 weight scale (1 when absent, always 1 for INT4).
    public let wtscale: Float
    /// The tensors, canonical layout, natural channel order.
    public let canonical: SVDQW4A4Tensors

    /// Inputs per quantization group.
    public var groupSize: Int { precision.groupSize }

    /// Validates and stores one layer's tensors given in `layout`.
    ///
    /// The precision follows from `wscales`: float8 e4m3 → NVFP4, bf16/f16 → INT4. `qweight` may be u8 or i8.
    /// - Throws: `NunchakuError` naming `name.<tensor>` for a wrong shape or dtype, N or K not a multiple of 128,
    ///   a rank not a multiple of 16, non-finite values, zero smoothing factors, negative or NaN micro-scales, a
    ///   `wtscale` that is not finite and positive (or not 1 for INT4), or `actUnsigned` on an NVFP4 layer.
    public init(name: String, tensors: SVDQW4A4Tensors, layout: SVDQW4A4Layout, actUnsigned: Bool = false) throws {
        func label(_ tensor: String) -> String { "\(name).\(tensor)" }
        let precision: SVDQuantPrecision
        switch tensors.wscales.dtype {
        case .f8e4m3fn: precision = .nvfp4
        case .bf16, .f16: precision = .int4
        default:
            throw NunchakuError.dtypeMismatch(context: label("wscales"), expected: [.bf16, .f16, .f8e4m3fn], actual: tensors.wscales.dtype)
        }
        guard !(actUnsigned && precision == .nvfp4) else {
            throw NunchakuError.unsupported(context: name, reason: "unsigned activations exist only for INT4 layers")
        }
        let canonical = try Self.convert(tensors, layout: layout, precision: precision, toCanonical: true, label: label)
        let (n, halfK) = try LayoutCheck.matrix(canonical.qweight, label("qweight"))
        let k = 2 * halfK
        try LayoutCheck.multiple(n, of: 128, "N (rows)", label("qweight"))
        try LayoutCheck.multiple(k, of: 128, "K (2 × columns)", label("qweight"))
        let rank = try LayoutCheck.matrix(canonical.projDown, label("proj_down")).columns
        guard rank % 16 == 0 else {
            throw NunchakuError.invalidArgument(context: label("proj_down"), reason: "rank = \(rank) is not a multiple of 16")
        }
        guard let weightDType = ActivationDType(canonical.smooth.dtype) else {
            throw NunchakuError.dtypeMismatch(context: label("smooth"), expected: [.bf16, .f16], actual: canonical.smooth.dtype)
        }
        let half = [weightDType.dtype]
        try LayoutCheck.shape(canonical.wscales, [k / precision.groupSize, n], label("wscales"))
        try LayoutCheck.shape(canonical.smooth, [k], label("smooth"))
        try LayoutCheck.shape(canonical.projDown, [k, rank], label("proj_down"))
        try LayoutCheck.shape(canonical.projUp, [n, rank], label("proj_up"))
        try LayoutCheck.dtype(canonical.projDown, half, label("proj_down"))
        try LayoutCheck.dtype(canonical.projUp, half, label("proj_up"))
        for (tensor, tensorName, length) in [
            (canonical.bias, "bias", n), (canonical.wcscales, "wcscales", n), (canonical.smoothOrig, "smooth_orig", k),
        ] {
            guard let tensor else { continue }
            try LayoutCheck.shape(tensor, [length], label(tensorName))
            try LayoutCheck.dtype(tensor, half, label(tensorName))
            try WeightValidation.finite(tensor, label(tensorName))
        }
        if precision == .int4 {
            try LayoutCheck.dtype(canonical.wscales, half, label("wscales"))
            try WeightValidation.finite(canonical.wscales, label("wscales"))
        } else {
            try WeightValidation.microScales(canonical.wscales, label("wscales"))
        }
        try WeightValidation.finite(canonical.smooth, label("smooth"), nonZero: true)
        try WeightValidation.finite(canonical.projDown, label("proj_down"))
        try WeightValidation.finite(canonical.projUp, label("proj_up"))
        let wtscale = try canonical.wtscale.map { try WeightValidation.scalar($0, label("wtscale")) } ?? 1
        guard wtscale.isFinite, wtscale > 0, precision == .nvfp4 || wtscale == 1 else {
            throw NunchakuError.invalidArgument(
                context: label("wtscale"),
                reason: "is \(wtscale); it must be finite and positive, and exactly 1 for INT4 layers (the INT4 kernel has no alpha)")
        }
        self.name = name
        self.precision = precision
        self.actUnsigned = actUnsigned
        self.outFeatures = n
        self.inFeatures = k
        self.rank = rank
        self.weightDType = weightDType
        self.wtscale = wtscale
        self.canonical = canonical
    }

    /// The layer's tensors in `layout` (bit-exact inverse of the conversion done at construction).
    public func tensors(layout: SVDQW4A4Layout) throws -> SVDQW4A4Tensors {
        try Self.convert(canonical, layout: layout, precision: precision, toCanonical: false) { "\(name).\($0)" }
    }

    // MARK: Layout conversion

    /// Converts between `layout` and canonical/natural order (`toCanonical`) or back. Every layout function checks
    /// the shape and dtype of the tensor it moves.
    private static func convert(
        _ source: SVDQW4A4Tensors, layout: SVDQW4A4Layout, precision: SVDQuantPrecision, toCanonical: Bool,
        label: (String) -> String
    ) throws -> SVDQW4A4Tensors {
        let matrices: Bool, vectors: Bool
        switch layout {
        case .nunchaku: (matrices, vectors) = (true, true)
        case .canonical(let order): (matrices, vectors) = (false, order == .nunchaku)
        }
        typealias L = NunchakuW4A4Layout
        func weight(_ tensor: Tensor, _ name: String) throws -> Tensor {
            guard matrices else {
                try LayoutCheck.dtype(tensor, [.u8, .i8], name)
                return try TensorValues.reinterpreted(tensor, as: .u8)
            }
            return toCanonical ? try L.unpackWeight(tensor, name: name) : try L.packWeight(tensor, name: name)
        }
        func scales(_ tensor: Tensor, _ name: String) throws -> Tensor {
            guard matrices else { return tensor }
            switch (precision, toCanonical) {
            case (.int4, true): return try L.unpackGroupScales(tensor, name: name)
            case (.int4, false): return try L.packGroupScales(tensor, name: name)
            case (.nvfp4, true): return try L.unpackMicroScales(tensor, name: name)
            case (.nvfp4, false): return try L.packMicroScales(tensor, name: name)
            }
        }
        func down(_ tensor: Tensor, _ name: String) throws -> Tensor {
            guard matrices else { return tensor }
            return toCanonical ? try L.unpackLowRankDown(tensor, name: name) : try L.packLowRankDown(tensor, name: name)
        }
        func up(_ tensor: Tensor, _ name: String) throws -> Tensor {
            guard matrices else { return tensor }
            return toCanonical ? try L.unpackLowRankUp(tensor, name: name) : try L.packLowRankUp(tensor, name: name)
        }
        func vector(_ tensor: Tensor, _ name: String) throws -> Tensor {
            guard vectors else { return tensor }
            return toCanonical
                ? try L.unpackChannelVector(tensor, name: name) : try L.packChannelVector(tensor, name: name)
        }
        return SVDQW4A4Tensors(
            qweight: try weight(source.qweight, label("qweight")),
            wscales: try scales(source.wscales, label("wscales")),
            wtscale: source.wtscale,
            wcscales: try source.wcscales.map { try vector($0, label("wcscales")) },
            bias: try source.bias.map { try vector($0, label("bias")) },
            smooth: try vector(source.smooth, label("smooth")),
            smoothOrig: try source.smoothOrig.map { try vector($0, label("smooth_orig")) },
            projDown: try down(source.projDown, label("proj_down")),
            projUp: try up(source.projUp, label("proj_up")))
    }
}
