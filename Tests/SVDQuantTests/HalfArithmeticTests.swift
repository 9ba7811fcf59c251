import NunchakuCore
import Testing
@testable import SVDQuant

/// The 16-bit arithmetic against exact integer arithmetic (Int128) and the generic `FloatFormats` conversions.
@Suite struct HalfArithmeticTests {
    @Test func f16TableAndFastRoundingMatchFloatFormats() {
        for bits in UInt16.min...UInt16.max {
            let value = FloatFormats.float(f16: bits)
            #expect(HalfBits.float(f16: bits).bitPattern == value.bitPattern || value.isNaN)
        }
        var rng = SeededGenerator(seed: 7)
        var samples: [Float] = [0, -0, 65504, 65519.99, 65520, -65520, 1e-8, 2.98e-8, 5.96e-8, 6.1e-5, .infinity, -.infinity]
        for _ in 0..<200_000 {
            // Exponents around the f16 range, random mantissas: hits subnormals, ties and overflow.
            let exponent = UInt32.random(in: 96...146, using: &rng), mantissa = UInt32.random(in: 0..<(1 << 23), using: &rng)
            samples.append(Float(bitPattern: (UInt32.random(in: 0...1, using: &rng) << 31) | exponent << 23 | mantissa))
        }
        for value in samples {
            #expect(HalfBits.f16Bits(value) == FloatFormats.f16Bits(value), "\(value)")
        }
        #expect(HalfBits.f16Bits(.nan) & 0x7FFF > 0x7C00)
    }

    /// The value `x` in units of 2^-unitExponent (exact for the test ranges).
    static func units(_ x: Float, _ unitExponent: Int) -> Int128 {
        Int128(Double(x) * Double(sign: .plus, exponent: unitExponent, significand: 1))
    }

    /// The nearest value of `type` to `exact` (in units of 2^-unitExponent), ties to even, searched among the
    /// neighbours of an approximation.
    static func nearest(_ exact: Int128, unitExponent: Int, _ type: ActivationDType) -> Float {
        let approximate = type.round(Float(Double(exact) / Double(sign: .plus, exponent: unitExponent, significand: 1)))
        let center = Int(type.bits(approximate))
        var best: (distance: Int128, bits: UInt16)?
        for candidate in (center - 3)...(center + 3) where (0...0xFFFF).contains(candidate) {
            for bits in [UInt16(candidate), UInt16(candidate) ^ 0x8000] {
                let value = type.value(bits)
                guard value.isFinite else { continue }
                let distance = (exact - units(value, unitExponent)).magnitude
                let d = Int128(distance)
                if best == nil || d < best!.distance || (d == best!.distance && bits & 1 == 0 && best!.bits & 1 == 1) {
                    best = (d, bits)
                }
            }
        }
        return type.value(best!.bits)
    }

    /// Random values of `type` with exponents in `exponents` (both signs).
    static func randomValue(_ type: ActivationDType, exponents: ClosedRange<Int>, _ rng: inout SeededGenerator) -> Float {
        let significand = Float.random(in: 1..<2, using: &rng)
        let value = Float(sign: Bool.random(using: &rng) ? .minus : .plus, exponent: Int.random(in: exponents, using: &rng), significand: significand)
        return type.round(value)
    }

    @Test(arguments: ActivationDType.allCases)
    func fusedMultiplyAddRoundsOnce(type: ActivationDType) {
        // Unit 2^-24 covers every f16 value; bf16 samples stay within 2^-12…2^12 so products stay multiples of 2^-48.
        let unit = 24, exponents = type == .f16 ? -14...7 : -12...12
        var rng = SeededGenerator(seed: 11)
        var cases: [(Float, Float, Float)] = []
        for _ in 0..<30_000 {
            cases.append((Self.randomValue(type, exponents: exponents, &rng), Self.randomValue(type, exponents: exponents, &rng),
                          Self.randomValue(type, exponents: exponents, &rng)))
        }
        // Near-ties: c plus a product close to half an ulp of c, where rounding the sum to fp32 first would tie.
        for _ in 0..<30_000 {
            let c = Self.randomValue(type, exponents: 2...7, &rng)
            let ulp = type.value(type.bits(c.magnitude) + 1) - c.magnitude
            let a = type.round(1 + Float(Int.random(in: -3...3, using: &rng)) * (type == .f16 ? 0x1p-10 : 0x1p-7))
            let b = type.round(ulp / 2 * (1 + Float(Int.random(in: -3...3, using: &rng)) * (type == .f16 ? 0x1p-10 : 0x1p-7)))
            cases.append((a, Bool.random(using: &rng) ? b : -b, c))
        }
        var mismatches = 0
        for (a, b, c) in cases {
            let exact = Self.units(a, unit) * Self.units(b, unit) + (Self.units(c, unit) << unit)
            let expected = Self.nearest(exact, unitExponent: 2 * unit, type)
            let actual = type.fusedMultiplyAdd(a, b, c)
            if actual.bitPattern != expected.bitPattern && !(actual == 0 && expected == 0) {
                mismatches += 1
                if mismatches < 5 { Issue.record("fma(\(a), \(b), \(c)) = \(actual), exact rounding gives \(expected)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: ActivationDType.allCases)
    func doubleRoundingIsAvoided(type: ActivationDType) {
        // 1 + half an ulp of the type, nudged by far less than an fp32 ulp: must round by the nudge, not tie.
        let halfUlp = type == .f16 ? 0x1p-11 : 0x1p-8
        #expect(type.round(1 + halfUlp + 0x1p-40) == type.round(Float(1 + 2 * halfUlp)))
        #expect(type.round(1 + halfUlp - 0x1p-40) == 1)
        #expect(type.round(1 + halfUlp) == 1)  // an exact tie goes to even
        #expect(type.round(3 * halfUlp + 1) == Float(1 + 4 * halfUlp))  // tie to even, upwards
        #expect(type.round(Double(type.maxFinite) * 2) == .infinity)
    }

    @Test func saturatingConversionClampsToTheRange() {
        #expect(ActivationDType.f16.roundSaturating(1e6) == 65504)
        #expect(ActivationDType.f16.roundSaturating(-1e6) == -65504)
        #expect(ActivationDType.f16.round(Float(1e6)) == .infinity)
        #expect(ActivationDType.bf16.roundSaturating(1e6) == ActivationDType.bf16.round(Float(1e6)))
    }
}
