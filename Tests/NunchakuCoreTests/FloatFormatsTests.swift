import Testing
@testable import NunchakuCore

/// Reference decoders written independently of `FloatFormats`, straight from the format definitions.
private func referenceE4M3FN(_ code: UInt8) -> Float {
    let sign: Float = code & 0x80 != 0 ? -1 : 1
    let exponent = Int((code >> 3) & 0xF), mantissa = Float(code & 0x7)
    if exponent == 15 && mantissa == 7 { return .nan }
    if exponent == 0 { return sign * mantissa / 8 * Float.pow2(-6) }
    return sign * (1 + mantissa / 8) * Float.pow2(exponent - 7)
}

private func referenceE5M2(_ code: UInt8) -> Float {
    let sign: Float = code & 0x80 != 0 ? -1 : 1
    let exponent = Int((code >> 2) & 0x1F), mantissa = Float(code & 0x3)
    if exponent == 31 { return mantissa == 0 ? sign * .infinity : .nan }
    if exponent == 0 { return sign * mantissa / 4 * Float.pow2(-14) }
    return sign * (1 + mantissa / 4) * Float.pow2(exponent - 15)
}

extension Float {
    static func pow2(_ exponent: Int) -> Float { Float(sign: .plus, exponent: exponent, significand: 1) }
}

@Test func e4m3fnDecodesAll256CodesAndRoundTrips() {
    for code in 0...255 {
        let byte = UInt8(code)
        let value = FloatFormats.float(e4m3fn: byte)
        let expected = referenceE4M3FN(byte)
        if expected.isNaN {
            #expect(value.isNaN, "code \(code)")
            #expect(FloatFormats.e4m3fnBits(value) & 0x7F == 0x7F)
        } else {
            #expect(value == expected, "code \(code)")
            #expect(FloatFormats.e4m3fnBits(value) == byte, "code \(code) round trip")
        }
    }
}

@Test func e5m2DecodesAll256CodesAndRoundTrips() {
    for code in 0...255 {
        let byte = UInt8(code)
        let value = FloatFormats.float(e5m2: byte)
        let expected = referenceE5M2(byte)
        if expected.isNaN {
            #expect(value.isNaN, "code \(code)")
        } else {
            #expect(value == expected, "code \(code)")
            #expect(FloatFormats.e5m2Bits(value) == byte, "code \(code) round trip")
        }
    }
}

@Test func e4m3fnBoundaries() {
    #expect(FloatFormats.e4m3fnBits(448) == 0x7E)
    #expect(FloatFormats.e4m3fnBits(-448) == 0xFE)
    #expect(FloatFormats.e4m3fnBits(464) == 0x7E)          // tie between 448 and (NaN) 480 goes to even 448
    #expect(FloatFormats.e4m3fnBits(465) == 0x7F)          // PyTorch: rounds past 448 → NaN
    #expect(FloatFormats.e4m3fnBits(.infinity) == 0x7F)
    #expect(FloatFormats.e4m3fnBits(-.infinity) == 0xFF)
    #expect(FloatFormats.e4m3fnBits(465, saturating: true) == 0x7E)
    #expect(FloatFormats.e4m3fnBits(-1e9, saturating: true) == 0xFE)
    #expect(FloatFormats.e4m3fnBits(.nan, saturating: true) & 0x7F == 0x7F)
    #expect(FloatFormats.e4m3fnBits(Float.pow2(-9)) == 0x01)      // smallest subnormal
    #expect(FloatFormats.e4m3fnBits(Float.pow2(-10)) == 0x00)     // tie to even → 0
    #expect(FloatFormats.e4m3fnBits(Float.pow2(-10) * 1.0001) == 0x01)
    #expect(FloatFormats.e4m3fnBits(Float.pow2(-6)) == 0x08)      // smallest normal
    #expect(FloatFormats.e4m3fnBits(-0.0) == 0x80)
    #expect(FloatFormats.e4m3fnBits(1.0625) == 0x38)              // tie between 1 and 1.125 → even (1)
    #expect(FloatFormats.e4m3fnBits(1.1875) == 0x3A)              // tie between 1.125 and 1.25 → even (1.25)
}

@Test func f16Boundaries() {
    #expect(FloatFormats.f16Bits(65504) == 0x7BFF)
    #expect(FloatFormats.f16Bits(65519) == 0x7BFF)                // below the rounding midpoint
    #expect(FloatFormats.f16Bits(65520) == 0x7C00)                // the midpoint rounds to even: infinity
    #expect(FloatFormats.f16Bits(-.infinity) == 0xFC00)
    #expect(FloatFormats.f16Bits(.nan) & 0x7E00 == 0x7E00)
    #expect(FloatFormats.f16Bits(Float.pow2(-24)) == 0x0001)
    #expect(FloatFormats.f16Bits(Float.pow2(-25)) == 0x0000)      // tie to even
    #expect(FloatFormats.f16Bits(Float.pow2(-25) * 1.5) == 0x0001)
    #expect(FloatFormats.f16Bits(Float.pow2(-14)) == 0x0400)
    #expect(FloatFormats.f16Bits(1 + Float.pow2(-11)) == 0x3C00)  // tie → even
    #expect(FloatFormats.f16Bits(1 + 3 * Float.pow2(-11)) == 0x3C02)
    #expect(FloatFormats.f16Bits(-2) == 0xC000)
    #expect(FloatFormats.float(f16: 0x3555) == 0.333251953125)
    for bits in stride(from: 0, through: 0xFFFF, by: 1) where (bits & 0x7C00) != 0x7C00 {
        let value = FloatFormats.float(f16: UInt16(bits))
        #expect(FloatFormats.f16Bits(value) == UInt16(bits))
    }
}

@Test func bf16Boundaries() {
    #expect(FloatFormats.bf16Bits(1) == 0x3F80)
    #expect(FloatFormats.bf16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
    #expect(FloatFormats.bf16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie → even (up)
    #expect(FloatFormats.bf16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
    #expect(FloatFormats.bf16Bits(Float(bitPattern: 0x7F7F_FFFF)) == 0x7F80)  // max float rounds to infinity
    #expect(FloatFormats.bf16Bits(.nan) == 0x7FC0)
    #expect(FloatFormats.bf16Bits(-.infinity) == 0xFF80)
    #expect(FloatFormats.bf16Bits(Float(bitPattern: 0x0000_8000)) == 0x0000)  // subnormal tie → even
    #expect(FloatFormats.bf16Bits(Float(bitPattern: 0x0001_8000)) == 0x0002)
    #expect(FloatFormats.float(bf16: 0xC0A0) == -5)
}

@Test func e2m1CodesAndRounding() {
    let table: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]
    for (code, value) in table.enumerated() {
        #expect(FloatFormats.float(e2m1: UInt8(code)) == value)
        #expect(FloatFormats.e2m1Code(value) == UInt8(code))
    }
    #expect(FloatFormats.e2m1Code(0.25) == 0)     // tie between 0 and 0.5 → even (0)
    #expect(FloatFormats.e2m1Code(0.75) == 2)     // tie between 0.5 and 1 → even (1)
    #expect(FloatFormats.e2m1Code(2.5) == 4)      // tie between 2 and 3 → even (2)
    #expect(FloatFormats.e2m1Code(5) == 6)        // tie between 4 and 6 → even (4)
    #expect(FloatFormats.e2m1Code(5.01) == 7)
    #expect(FloatFormats.e2m1Code(100) == 7)      // saturates at 6
    #expect(FloatFormats.e2m1Code(-100) == 15)
    #expect(FloatFormats.e2m1Code(.nan) == 0)
}

@Test func e8m0Decodes() {
    #expect(FloatFormats.float(e8m0: 127) == 1)
    #expect(FloatFormats.float(e8m0: 0) == Float.pow2(-127))
    #expect(FloatFormats.float(e8m0: 254) == Float.pow2(127))
    #expect(FloatFormats.float(e8m0: 255).isNaN)
}
