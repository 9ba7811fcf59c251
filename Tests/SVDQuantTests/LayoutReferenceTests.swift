import NunchakuCore
import Testing
@testable import SVDQuant

/// The closed-form layouts against the reshape/permute reference, and their inverses, on random shapes.
@Suite struct LayoutReferenceTests {
    /// Random (N, K) multiples of 128 and a rank in 16…256, per seed.
    static func shape(_ rng: inout SeededGenerator) -> (n: Int, k: Int, rank: Int) {
        (128 * Int.random(in: 1...3, using: &rng), 128 * Int.random(in: 1...4, using: &rng), 16 * Int.random(in: 1...16, using: &rng))
    }

    static func words(_ tensor: Tensor) -> [UInt16] {
        tensor.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
    }

    @Test(arguments: 0..<6)
    func qweightMatchesReferenceAndInverts(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let (n, k, _) = Self.shape(&rng)
        let canonical = randomBytes(n * k / 2, &rng)
        let packed = try NunchakuW4A4Layout.packWeight(bytesTensor(canonical, [n, k / 2], .u8))
        #expect(packed.dtype == .i8 && packed.shape == [n, k / 2])
        #expect(TensorValues.bytes(packed) == ReshapePermuteReference.packWeight(canonical, n: n, k: k))
        #expect(TensorValues.bytes(try NunchakuW4A4Layout.unpackWeight(packed)) == canonical)
        let arbitraryPacked = randomBytes(n * k / 2, &rng)
        let repacked = try NunchakuW4A4Layout.packWeight(try NunchakuW4A4Layout.unpackWeight(bytesTensor(arbitraryPacked, [n, k / 2], .i8)))
        #expect(TensorValues.bytes(repacked) == arbitraryPacked)
    }

    @Test(arguments: 0..<6)
    func groupScalesAndVectorsMatchReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let (n, k, _) = Self.shape(&rng)
        let scales = randomFiniteHalfBits([k / 64, n], .bf16, &rng)
        let packed = try NunchakuW4A4Layout.packGroupScales(scales)
        #expect(Self.words(packed) == ReshapePermuteReference.packGroupScales(Self.words(scales), groups: k / 64, n: n))
        #expect(TensorValues.bytes(try NunchakuW4A4Layout.unpackGroupScales(packed)) == TensorValues.bytes(scales))

        let vector = randomFiniteHalfBits([k], .f16, &rng)
        let packedVector = try NunchakuW4A4Layout.packChannelVector(vector, name: "smooth")
        #expect(Self.words(packedVector) == ReshapePermuteReference.packGroupScales(Self.words(vector), groups: 1, n: k))
        #expect(TensorValues.bytes(try NunchakuW4A4Layout.unpackChannelVector(packedVector, name: "smooth")) == TensorValues.bytes(vector))
    }

    @Test(arguments: 0..<6)
    func microScalesMatchReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let (n, k, _) = Self.shape(&rng)
        let scales = bytesTensor(randomBytes(k / 16 * n, &rng), [k / 16, n], .f8e4m3fn)
        let packed = try NunchakuW4A4Layout.packMicroScales(scales)
        #expect(TensorValues.bytes(packed) == ReshapePermuteReference.packMicroScales(TensorValues.bytes(scales), groups: k / 16, n: n))
        #expect(TensorValues.bytes(try NunchakuW4A4Layout.unpackMicroScales(packed)) == TensorValues.bytes(scales))
    }

    @Test(arguments: 0..<6)
    func lowRankMatchesReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let (n, k, rank) = Self.shape(&rng)
        let down = randomFiniteHalfBits([k, rank], .bf16, &rng)
        let packedDown = try NunchakuW4A4Layout.packLowRankDown(down)
        #expect(Self.words(packedDown) == ReshapePermuteReference.packLowRankDown(Self.words(down), k: k, rank: rank))
        #expect(TensorValues.bytes(try NunchakuW4A4Layout.unpackLowRankDown(packedDown)) == TensorValues.bytes(down))

        let up = randomFiniteHalfBits([n, rank], .f16, &rng)
        let packedUp = try NunchakuW4A4Layout.packLowRankUp(up)
        #expect(Self.words(packedUp) == ReshapePermuteReference.packLowRankUp(Self.words(up), n: n, rank: rank))
        #expect(TensorValues.bytes(try NunchakuW4A4Layout.unpackLowRankUp(packedUp)) == TensorValues.bytes(up))
    }

    @Test(arguments: 0..<6)
    func awqWeightMatchesReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let n = 4 * Int.random(in: 1...40, using: &rng), k = 64 * Int.random(in: 1...6, using: &rng)
        let canonical = randomBytes(n * k / 2, &rng)
        let packed = try NunchakuAWQLayout.packWeight(bytesTensor(canonical, [n, k / 2], .u8))
        #expect(packed.dtype == .i32 && packed.shape == [n / 4, k / 2])
        #expect(TensorValues.bytes(packed) == ReshapePermuteReference.packAWQWeight(canonical, n: n, k: k))
        #expect(TensorValues.bytes(try NunchakuAWQLayout.unpackWeight(packed)) == canonical)
    }

    /// Hand-checked entries of the closed forms (research doc §2.2–2.6), independent of both implementations.
    @Test func knownPositions() throws {
        // qweight: code (n = 9, k = 37) sits in word ((((0·2+0)·8+0)·8+1)·4+0)·4+1·2+1 = 19 (n_lane 1, n_pack 1,
        // k_pack 1, k_lane 0), register 5 → byte 19·4 + 2, high nibble.
        var codes = [UInt8](repeating: 0, count: 128 * 64)
        codes[9 * 64 + 37 / 2] = 0xA << 4
        let packed = TensorValues.bytes(try NunchakuW4A4Layout.packWeight(bytesTensor(codes, [128, 64], .u8)))
        #expect(packed.firstIndex(where: { $0 != 0 }) == 19 * 4 + 2)
        #expect(packed[19 * 4 + 2] == 0xA0)
        // Channel vector: channel 10 = a 0, b 1, c 1, d 0 → slot 0·16 + 1·4 + 1·2 + 0 = 6.
        #expect(NunchakuW4A4Layout.channelSlot(10) == 6)
        #expect(NunchakuW4A4Layout.channelSlot(128 + 127) == 127)
        // Modulation interleave, S = 6, N = 12: natural channel 5 (chunk 2, d 1) is packed channel 1·6 + 2 = 8.
        #expect(try ModulationInterleave(chunks: 6).packedChannel(5, outputs: 12) == 8)
        #expect(try ModulationInterleave(chunks: 6).scaleChunks == [1, 4])
        #expect(try ModulationInterleave(chunks: 3).scaleChunks == [1])
    }

    @Test func layoutErrorsNameTheTensor() {
        let badWeight = thrownError { _ = try NunchakuW4A4Layout.packWeight(Tensor(zeros: [100, 64], dtype: .u8), name: "blk.qweight") }
        #expect(mentions(badWeight, "blk.qweight", "100", "128"))
        let badRank = thrownError { _ = try NunchakuW4A4Layout.packLowRankUp(Tensor(zeros: [128, 24], dtype: .bf16), name: "blk.proj_up") }
        #expect(mentions(badRank, "blk.proj_up", "rank = 24"))
        let badDtype = thrownError { _ = try NunchakuW4A4Layout.packGroupScales(Tensor(zeros: [2, 128], dtype: .f32), name: "blk.wscales") }
        #expect(mentions(badDtype, "blk.wscales", "f32"))
        let badAWQ = thrownError { _ = try NunchakuAWQLayout.unpackWeight(Tensor(zeros: [4, 20], dtype: .i32), name: "adaln.qweight") }
        #expect(mentions(badAWQ, "adaln.qweight", "K = 40"))
    }
}
