/// E2M1 (FP4) rounding and decoding by table, for the quantizer's hot loops. Gives the same codes as
/// `FloatFormats.e2m1Code` (round to nearest, ties to the even code, saturating at ±6, NaN → 0) without its
/// generic small-float arithmetic; a test checks the two agree.
enum E2M1Table {
    /// The value of each code 0...15 (sign in bit 3).
    static let values: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]

    /// Midpoints between consecutive magnitudes; at a midpoint the even code wins.
    private static let midpoints: [Float] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5]

    @inline(__always)
    static func code(_ value: Float) -> UInt8 {
        if value.isNaN { return 0 }
        let magnitude = abs(value)
        var code: UInt8 = 0
        for index in 0..<midpoints.count {
            let midpoint = midpoints[index]
            // Between codes `index` and `index + 1`; a tie goes to whichever is even.
            guard magnitude > midpoint || (magnitude == midpoint && index % 2 == 1) else { break }
            code = UInt8(index + 1)
        }
        return value.sign == .minus ? code | 0x8 : code
    }

    @inline(__always)
    static func value(_ code: UInt8) -> Float {
        values[Int(code & 0xF)]
    }
}
