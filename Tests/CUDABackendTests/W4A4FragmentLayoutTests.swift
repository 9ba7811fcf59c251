@testable import CUDABackend
import NunchakuCore
import SVDQuant
import Testing

/// Checks the device layouts against the tensor-core fragment maps of the PTX ISA (mma.sync m16n8k64 .s4,
/// m16n8k32 .s8, m16n8k16 .s8 and .f16/.bf16), emulated here: registers are gathered from the packed buffers exactly
/// as the kernels index them, the matrices the hardware would see are rebuilt from the documented maps, and the
/// products must equal the canonical dot products.
@Suite struct W4A4FragmentLayoutTests {
    static let m = 32, n = 32, k = 192

    @Test(arguments: [false, true])
    func int4FragmentsGiveTheCanonicalGroupProducts(unsigned: Bool) {
        var random = SplitMix64(seed: unsigned ? 11 : 12)
        let activations = Self.randomCodes(rows: Self.m, &random), weights = Self.randomCodes(rows: Self.n, &random)
        let (a, b) = Self.packed(activations, weights, .int4)
        let chunks = Self.k / 64
        for mt in 0..<(Self.m / 16) {
            for nt in 0..<(Self.n / 8) {
                for c in 0..<chunks {
                    let aRegisters = (0..<32).map { lane in (0..<4).map { a[((mt * chunks + c) * 32 + lane) * 4 + $0] } }
                    let bRegisters = (0..<32).map { lane in
                        (0..<2).map { h in b[(((nt / 2) * chunks + c) * 32 + lane) * 4 + 2 * (nt % 2) + h] }
                    }
                    let native = PTXFragments.mmaS4(aRegisters, bRegisters, unsignedA: unsigned)
                    // The sm_90 path: each word widened to even- and odd-nibble bytes, two m16n8k32 products.
                    var widened = [[Int]](repeating: [Int](repeating: 0, count: 8), count: 16)
                    for h in 0..<2 {
                        let wa = aRegisters.map { r in
                            [widen(r[2 * h], odd: false, unsigned), widen(r[2 * h + 1], odd: false, unsigned),
                             widen(r[2 * h], odd: true, unsigned), widen(r[2 * h + 1], odd: true, unsigned)]
                        }
                        let wb = bRegisters.map { r in [widen(r[h], odd: false, false), widen(r[h], odd: true, false)] }
                        let part = PTXFragments.mmaS8K32(wa, wb, unsignedA: unsigned)
                        for row in 0..<16 { for col in 0..<8 { widened[row][col] += part[row][col] } }
                    }
                    for row in 0..<16 {
                        for col in 0..<8 {
                            var expected = 0
                            for kk in (64 * c)..<(64 * c + 64) {
                                expected += Self.int4(Self.code(activations, (mt * 16 + row) * Self.k + kk), signed: !unsigned)
                                    * Self.int4(Self.code(weights, (nt * 8 + col) * Self.k + kk), signed: true)
                            }
                            #expect(native[row][col] == expected, "s4 tile (\(mt), \(nt)) chunk \(c) element (\(row), \(col))")
                            #expect(widened[row][col] == expected, "s8 tile (\(mt), \(nt)) chunk \(c) element (\(row), \(col))")
                        }
                    }
                }
            }
        }
    }

    @Test func nvfp4FragmentsGiveTheCanonicalGroupProducts() {
        var random = SplitMix64(seed: 13)
        let activations = Self.randomCodes(rows: Self.m, &random), weights = Self.randomCodes(rows: Self.n, &random)
        let (a, b) = Self.packed(activations, weights, .nvfp4)
        let chunks = Self.k / 64
        for mt in 0..<(Self.m / 16) {
            for nt in 0..<(Self.n / 8) {
                for c in 0..<chunks {
                    for q in 0..<4 {
                        let h = q / 2, e = q % 2
                        let aRegisters = (0..<32).map { lane in
                            (0..<2).map { r in decodeE2M1(a[((mt * chunks + c) * 32 + lane) * 4 + 2 * h + r], e) }
                        }
                        let bRegisters = (0..<32).map { lane in
                            [decodeE2M1(b[(((nt / 2) * chunks + c) * 32 + lane) * 4 + 2 * (nt % 2) + h], e)]
                        }
                        let product = PTXFragments.mmaS8K16(aRegisters, bRegisters)
                        for row in 0..<16 {
                            for col in 0..<8 {
                                var expected = 0
                                for kk in (64 * c + 16 * q)..<(64 * c + 16 * q + 16) {
                                    expected += Self.doubledE2M1(Self.code(activations, (mt * 16 + row) * Self.k + kk))
                                        * Self.doubledE2M1(Self.code(weights, (nt * 8 + col) * Self.k + kk))
                                }
                                #expect(product[row][col] == expected, "tile (\(mt), \(nt)) group \(4 * c + q) element (\(row), \(col))")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: SVDQuantPrecision.allCases)
    func lowRankDownFragmentsPairWithTheQuantizeKernelsLoads(precision: SVDQuantPrecision) {
        // Small integers keep every fp32 sum exact. Half pairs are represented by the values themselves.
        var random = SplitMix64(seed: 14)
        let rank = 32, rows = 16
        let x = (0..<(rows * Self.k)).map { _ in Float(Int(random.next() % 9) - 4) }
        let down = (0..<(Self.k * rank)).map { _ in Float(Int(random.next() % 9) - 4) }
        let device = W4A4FragmentLayout.packLowRankDown(down, inFeatures: Self.k, rank: rank, precision: precision)
        var result = [[Float]](repeating: [Float](repeating: 0, count: rank), count: rows)
        for c in 0..<(Self.k / 64) {
            for rt in 0..<(rank / 8) {
                for h in 0..<2 {
                    for j in 0..<2 {
                        // A: the lane's loaded slots (w4a4_load_slots); words 2j, 2j+1 of rows g and g + 8.
                        let aPairs = (0..<32).map { lane -> [[Float]] in
                            let g = lane / 4, t = lane % 4
                            func pair(_ row: Int, _ word: Int) -> [Float] {
                                (0..<2).map { x[row * Self.k + 64 * c + Self.kernelLoadColumn(precision, t: t, h: h, slot: 2 * word + $0)] }
                            }
                            return [pair(g, 2 * j), pair(g + 8, 2 * j), pair(g, 2 * j + 1), pair(g + 8, 2 * j + 1)]
                        }
                        let bPairs = (0..<32).map { lane -> [[Float]] in
                            (0..<2).map { b in
                                let word = (((c * (rank / 8) + rt) * 32 + lane) * 8) + 4 * h + 2 * j + b
                                return [device[2 * word], device[2 * word + 1]]
                            }
                        }
                        let part = PTXFragments.mmaF16K16(aPairs, bPairs)
                        for row in 0..<rows { for col in 0..<8 { result[row][rt * 8 + col] += part[row][col] } }
                    }
                }
            }
        }
        for row in 0..<rows {
            for r in 0..<rank {
                var expected: Float = 0
                for kk in 0..<Self.k { expected += x[row * Self.k + kk] * down[kk * rank + r] }
                #expect(result[row][r] == expected, "\(precision) row \(row) rank \(r)")
            }
        }
    }

    @Test(arguments: SVDQuantPrecision.allCases)
    func quantizeKernelStoresWhereTheLayoutSays(precision: SVDQuantPrecision) {
        // w4a4_quantize.cu: slot i of word h for row g + 8r goes to word 2h + r of the lane's fragment.
        let chunks = Self.k / 64
        for tile in 0..<2 {
            for c in 0..<chunks {
                for lane in 0..<32 {
                    for r in 0..<2 {
                        for h in 0..<2 {
                            for i in 0..<8 {
                                let row = 16 * tile + lane / 4 + 8 * r
                                let column = 64 * c + Self.kernelLoadColumn(precision, t: lane % 4, h: h, slot: i)
                                let kernelNibble = (((tile * chunks + c) * 32 + lane) * 4 + 2 * h + r) * 8 + i
                                #expect(W4A4FragmentLayout.activationNibble(row: row, column: column, inFeatures: Self.k, precision: precision) == kernelNibble)
                            }
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: SVDQuantPrecision.allCases)
    func activationCodesRoundTripAndPadWithZeros(precision: SVDQuantPrecision) {
        var random = SplitMix64(seed: 15)
        let rows = 5
        let codes = Self.randomCodes(rows: rows, &random)
        let padded = W4A4FragmentLayout.paddedRows(rows)
        #expect(padded == 128)
        let device = W4A4FragmentLayout.packActivationCodes(codes, rows: rows, paddedRows: padded, inFeatures: Self.k, precision: precision)
        #expect(device.count == padded * Self.k / 2)
        #expect(W4A4FragmentLayout.unpackActivationCodes(device, rows: rows, inFeatures: Self.k, precision: precision) == codes)
        #expect(device.filter { $0 != 0 }.count == codes.filter { $0 != 0 }.count, "padded rows hold zero codes")
        #expect(W4A4FragmentLayout.paddedRows(128) == 128 && W4A4FragmentLayout.paddedRows(129) == 256)
    }

    @Test func preferredPathsFollowTheArchitecture() {
        #expect(W4A4MMAPath.preferred(for: .int4, on: ComputeCapability(major: 8, minor: 9)) == .int4Native)
        #expect(W4A4MMAPath.preferred(for: .int4, on: ComputeCapability(major: 9, minor: 0)) == .int4Widened)
        #expect(W4A4MMAPath.preferred(for: .int4, on: ComputeCapability(major: 12, minor: 0)) == .int4Widened)
        #expect(W4A4MMAPath.preferred(for: .nvfp4, on: ComputeCapability(major: 8, minor: 0)) == .nvfp4Decoded)
    }

    // MARK: helpers

    /// The chunk column w4a4_load_slots reads into slot `slot` of word h (written from the kernel's loads).
    static func kernelLoadColumn(_ precision: SVDQuantPrecision, t: Int, h: Int, slot: Int) -> Int {
        switch precision {
        case .int4: return 32 * h + 8 * t + slot
        case .nvfp4: return slot < 4 ? 32 * h + 4 * t + slot : 32 * h + 16 + 4 * t + slot - 4
        }
    }

    static func randomCodes(rows: Int, _ random: inout SplitMix64) -> [UInt8] {
        (0..<(rows * k / 2)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    static func packed(_ activations: [UInt8], _ weights: [UInt8], _ precision: SVDQuantPrecision) -> ([UInt32], [UInt32]) {
        let a = W4A4FragmentLayout.packActivationCodes(activations, rows: m, paddedRows: m, inFeatures: k, precision: precision)
        let b = W4A4FragmentLayout.packWeightCodes(weights, outFeatures: n, inFeatures: k, precision: precision)
        return (words(a), words(b))
    }

    static func words(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: bytes.count, by: 4).map { i in
            UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
        }
    }

    /// Canonical code `index` (row-major, low nibble first).
    static func code(_ bytes: [UInt8], _ index: Int) -> UInt8 { (bytes[index / 2] >> (4 * UInt8(index % 2))) & 0xF }

    static func int4(_ code: UInt8, signed: Bool) -> Int { signed && code >= 8 ? Int(code) - 16 : Int(code) }

    /// Twice the E2M1 value of a code.
    static func doubledE2M1(_ code: UInt8) -> Int { Int(2 * FloatFormats.float(e2m1: code)) }
}

/// `nk_widen_nibbles` of w4a4_fragments.cuh.
func widen(_ word: UInt32, odd: Bool, _ unsigned: Bool) -> UInt32 {
    let bytes = (odd ? word >> 4 : word) & 0x0F0F_0F0F
    return unsigned ? bytes : bytes | ((bytes & 0x0808_0808) &* 0x1E)
}

/// `nk_e2m1x4_to_s8x4` of w4a4_fragments.cuh.
func decodeE2M1(_ word: UInt32, _ e: Int) -> UInt32 {
    var result: UInt32 = 0
    for i in 0..<4 {
        let code = (word >> UInt32(16 * e + 4 * i)) & 0xF
        let magnitude = UInt32((UInt64(0x0C08_0604_0302_0100) >> (8 * UInt64(code & 7))) & 0xFF)
        let byte = code & 8 != 0 ? (0 &- magnitude) & 0xFF : magnitude
        result |= byte << UInt32(8 * i)
    }
    return result
}
