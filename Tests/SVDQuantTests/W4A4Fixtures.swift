import NunchakuCore
@testable import SVDQuant

/// Random but well-formed W4A4 layers and activations for the layer tests.
enum W4A4Fixtures {
    struct Options {
        var precision: SVDQuantPrecision = .int4
        var dtype: ActivationDType = .bf16
        var n = 128, k = 256, rank = 16
        var actUnsigned = false
        var channelScales = false
        var wtscale: Float?
        var bias = true
    }

    /// Canonical tensors with codes over the whole range, positive moderate scales and smoothing in [0.5, 2].
    static func tensors(_ options: Options, _ rng: inout SeededGenerator) -> SVDQW4A4Tensors {
        let (n, k, r, type) = (options.n, options.k, options.rank, options.dtype)
        let groups = k / options.precision.groupSize
        let codes = randomBytes(n * k / 2, &rng)
        let wscales = options.precision == .int4
            ? halfTensor(randomValues(groups * n, in: 0.002...0.02, type, &rng), [groups, n], type)
            : bytesTensor((0..<(groups * n)).map { _ in FloatFormats.e4m3fnBits(Float.random(in: 0.02...0.3, using: &rng)) }, [groups, n], .f8e4m3fn)
        return SVDQW4A4Tensors(
            qweight: bytesTensor(codes, [n, k / 2], .u8),
            wscales: wscales,
            wtscale: options.wtscale.map { Tensor([$0], shape: [1], dtype: .bf16) },
            wcscales: options.channelScales ? halfTensor(randomValues(n, in: 0.5...1.5, type, &rng), [n], type) : nil,
            bias: options.bias ? halfTensor(randomValues(n, in: -0.5...0.5, type, &rng), [n], type) : nil,
            smooth: halfTensor(randomValues(k, in: 0.5...2, type, &rng), [k], type),
            projDown: halfTensor(randomValues(k * r, in: -0.1...0.1, type, &rng), [k, r], type),
            projUp: halfTensor(randomValues(n * r, in: -0.1...0.1, type, &rng), [n, r], type))
    }

    static func weights(_ options: Options, seed: UInt64, name: String = "layer") throws -> SVDQW4A4Weights {
        var rng = SeededGenerator(seed: seed)
        return try SVDQW4A4Weights(
            name: name, tensors: tensors(options, &rng), layout: .canonical(vectorOrder: .natural), actUnsigned: options.actUnsigned)
    }

    /// Activations [m, k]: uniform in ±1 (GELU-like ≥ −0.17 for unsigned layers).
    static func activations(rows m: Int, _ options: Options, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed &+ 1000)
        let range: ClosedRange<Float> = options.actUnsigned ? -0.17...1.5 : -1...1
        return halfTensor(randomValues(m * options.k, in: range, options.dtype, &rng), [m, options.k], options.dtype)
    }
}
