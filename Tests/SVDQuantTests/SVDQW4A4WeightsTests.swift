import NunchakuCore
import Testing
@testable import SVDQuant

/// Layout round trips of whole layers and the validation errors of `SVDQW4A4Weights`.
@Suite struct SVDQW4A4WeightsTests {
    /// Random tensors in Nunchaku's packed layout (any bits where any bits are valid).
    static func packedTensors(_ precision: SVDQuantPrecision, n: Int, k: Int, rank: Int, seed: UInt64) -> SVDQW4A4Tensors {
        var rng = SeededGenerator(seed: seed)
        let groups = k / precision.groupSize
        let wscales = precision == .int4
            ? randomFiniteHalfBits([groups, n], .bf16, &rng)
            : bytesTensor(randomBytes(groups * n, &rng).map { $0 & 0x7F == 0x7F ? 0x7E : $0 & 0x7F }, [groups, n], .f8e4m3fn)
        return SVDQW4A4Tensors(
            qweight: bytesTensor(randomBytes(n * k / 2, &rng), [n, k / 2], .i8), wscales: wscales,
            wtscale: precision == .nvfp4 ? Tensor([0.5], shape: [1], dtype: .bf16) : nil,
            wcscales: precision == .nvfp4 ? randomFiniteHalfBits([n], .bf16, &rng) : nil,
            bias: randomFiniteHalfBits([n], .bf16, &rng),
            smooth: halfTensor(randomValues(k, in: 0.25...4, .bf16, &rng), [k], .bf16),
            smoothOrig: randomFiniteHalfBits([k], .bf16, &rng),
            projDown: randomFiniteHalfBits([k, rank], .bf16, &rng), projUp: randomFiniteHalfBits([n, rank], .bf16, &rng))
    }

    static func sameBytes(_ a: SVDQW4A4Tensors, _ b: SVDQW4A4Tensors) -> Bool {
        let pairs: [(Tensor?, Tensor?)] = [
            (a.qweight, b.qweight), (a.wscales, b.wscales), (a.wtscale, b.wtscale), (a.wcscales, b.wcscales), (a.bias, b.bias),
            (a.smooth, b.smooth), (a.smoothOrig, b.smoothOrig), (a.projDown, b.projDown), (a.projUp, b.projUp),
        ]
        return pairs.allSatisfy { pair in
            switch pair {
            case (nil, nil): true
            case let (x?, y?): x.shape == y.shape && TensorValues.bytes(x) == TensorValues.bytes(y)
            default: false
            }
        }
    }

    @Test(arguments: [(SVDQuantPrecision.int4, UInt64(1)), (.int4, 2), (.nvfp4, 3), (.nvfp4, 4)])
    func everyLayoutRoundTripsBitExactly(precision: SVDQuantPrecision, seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let n = 128 * Int.random(in: 1...2, using: &rng), k = 128 * Int.random(in: 1...3, using: &rng)
        let rank = 16 * Int.random(in: 1...16, using: &rng)
        let packed = Self.packedTensors(precision, n: n, k: k, rank: rank, seed: seed)
        let weights = try SVDQW4A4Weights(name: "blk", tensors: packed, layout: .nunchaku)
        #expect(weights.precision == precision && weights.rank == rank && weights.outFeatures == n && weights.inFeatures == k)
        #expect(Self.sameBytes(try weights.tensors(layout: .nunchaku), packed))
        // The canonical matrices are the reference unpacking; vectors follow the requested order.
        #expect(ReshapePermuteReference.packWeight(TensorValues.bytes(weights.canonical.qweight), n: n, k: k) == TensorValues.bytes(packed.qweight))
        for order in ChannelVectorOrder.allCases {
            let canonical = try weights.tensors(layout: .canonical(vectorOrder: order))
            #expect(canonical.qweight.dtype == .u8)
            let reloaded = try SVDQW4A4Weights(name: "blk", tensors: canonical, layout: .canonical(vectorOrder: order))
            #expect(Self.sameBytes(reloaded.canonical, weights.canonical))
            #expect(Self.sameBytes(try reloaded.tensors(layout: .nunchaku), packed))
        }
        let vllmStyle = try weights.tensors(layout: .canonical(vectorOrder: .nunchaku))
        #expect(TensorValues.bytes(vllmStyle.bias!) == TensorValues.bytes(packed.bias!))
        #expect(TensorValues.bytes(vllmStyle.projUp) == TensorValues.bytes(weights.canonical.projUp))
    }

    static func validTensors(_ precision: SVDQuantPrecision = .int4) -> SVDQW4A4Tensors {
        var rng = SeededGenerator(seed: 99)
        var options = W4A4Fixtures.Options()
        options.precision = precision
        return W4A4Fixtures.tensors(options, &rng)
    }

    /// The error building layer "blk" from `tensors` (canonical layout) after `edit`.
    static func error(
        _ precision: SVDQuantPrecision = .int4, actUnsigned: Bool = false, _ edit: (inout SVDQW4A4Tensors) -> Void
    ) -> NunchakuError? {
        var tensors = validTensors(precision)
        edit(&tensors)
        return thrownError {
            _ = try SVDQW4A4Weights(name: "blk", tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: actUnsigned)
        }
    }

    @Test func badTensorsAreRejectedByName() {
        #expect(Self.error { _ in } == nil)
        #expect(mentions(Self.error { $0.wscales = $0.wscales.converted(to: .f32) }, "blk.wscales", "f32"))
        #expect(mentions(Self.error { $0.qweight = Tensor(zeros: [100, 128], dtype: .u8) }, "blk.qweight", "N (rows) = 100"))
        #expect(mentions(Self.error { $0.qweight = Tensor(zeros: [128, 96], dtype: .u8) }, "blk.qweight", "K (2 × columns) = 192"))
        #expect(mentions(Self.error { $0.projDown = Tensor(zeros: [256, 24], dtype: .bf16) }, "blk.proj_down", "rank = 24"))
        #expect(mentions(Self.error { $0.projUp = Tensor(zeros: [128, 32], dtype: .bf16) }, "blk.proj_up", "[128, 16]"))
        #expect(mentions(Self.error { $0.projDown = $0.projDown.converted(to: .f32) }, "blk.proj_down", "f32"))
        #expect(mentions(Self.error { $0.bias = Tensor(zeros: [129], dtype: .bf16) }, "blk.bias", "[128]"))
        #expect(mentions(Self.error { $0.bias = $0.bias!.converted(to: .f16) }, "blk.bias", "f16"))
        #expect(mentions(Self.error { $0.smooth = halfTensor([Float](repeating: 1, count: 255) + [0], [256], .bf16) }, "blk.smooth", "element 255", "non-zero"))
        #expect(mentions(Self.error { $0.wscales = halfTensor([Float.infinity] + [Float](repeating: 1, count: 4 * 128 - 1), [4, 128], .bf16) }, "blk.wscales", "element 0", "inf"))
        #expect(mentions(Self.error { $0.projUp = halfTensor([Float](repeating: 0, count: 128 * 16 - 1) + [.nan], [128, 16], .bf16) }, "blk.proj_up", "nan"))
        #expect(mentions(Self.error { $0.wtscale = Tensor([2], shape: [1], dtype: .bf16) }, "blk.wtscale", "exactly 1 for INT4"))
        #expect(mentions(Self.error(.nvfp4) { $0.wtscale = Tensor([.nan], shape: [1], dtype: .f32) }, "blk.wtscale", "finite and positive"))
        #expect(mentions(Self.error(.nvfp4) { $0.wtscale = Tensor([1, 1], shape: [2], dtype: .f32) }, "blk.wtscale"))
        #expect(mentions(Self.error(.nvfp4, actUnsigned: true) { _ in }, "blk", "unsigned activations exist only for INT4"))
        let nanCode = Self.error(.nvfp4) { $0.wscales = bytesTensor([0x7F] + [UInt8](repeating: 0x38, count: 16 * 128 - 1), [16, 128], .f8e4m3fn) }
        #expect(mentions(nanCode, "blk.wscales", "0x7f", "non-negative"))
        let negative = Self.error(.nvfp4) { $0.wscales = bytesTensor([UInt8](repeating: 0x38, count: 16 * 128 - 1) + [0xB8], [16, 128], .f8e4m3fn) }
        #expect(mentions(negative, "blk.wscales", "element 2047", "0xb8"))
    }

    @Test func packedLayoutErrorsNameTheTensorToo() {
        var packed = Self.packedTensors(.int4, n: 128, k: 128, rank: 16, seed: 5)
        packed.wscales = Tensor(zeros: [2, 120], dtype: .bf16)
        #expect(mentions(thrownError { _ = try SVDQW4A4Weights(name: "blk", tensors: packed, layout: .nunchaku) }, "blk.wscales", "120"))
    }

    @Test func smoothingThatUnderflowsInTheOtherTypeIsAnError() throws {
        var tensors = Self.validTensors()
        tensors.smooth = halfTensor([Float](repeating: 1e-10, count: 256), [256], .bf16)
        let layer = SVDQW4A4Linear(weights: try SVDQW4A4Weights(name: "blk", tensors: tensors, layout: .canonical(vectorOrder: .natural)))
        #expect(try layer.forward(Tensor(zeros: [1, 256], dtype: .bf16)).shape == [1, 128])
        #expect(mentions(thrownError { _ = try layer.forward(Tensor(zeros: [1, 256], dtype: .f16)) }, "blk.smooth", "underflows to 0 in f16"))
    }
}
