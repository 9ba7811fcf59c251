/// One lane of `log256_ps` and `sincos256_ps` from PyTorch's `avx_mathfun.h` (Cephes polynomials, after Julien
/// Pommier's SSE code), operation for operation, so the AVX2 `randn` kernel can be reproduced bit for bit.
/// Constants are double literals converted to float, as the C initializers do.
///
/// PyTorch's wheels are built by GCC, whose AVX2 intrinsics are plain vector arithmetic, so with FMA enabled GCC
/// contracts every product whose only use is an addition into a fused multiply-add (the first product in
/// statement order when both operands of the addition are products). The `addingProduct` calls below are those
/// contractions; without them about one value in ten differs in the last bit from `torch.randn`.
enum CephesAVXMath {
    private static let sqrtHalf = Float(0.707106781186547524 as Double)
    private static let logP: [Float] = [
        7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
        -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1,
    ].map { Float($0 as Double) }
    private static let logQ1 = Float(-2.12194440e-4 as Double)
    private static let logQ2 = Float(0.693359375 as Double)

    private static let minusDP1 = Float(-0.78515625 as Double)
    private static let minusDP2 = Float(-2.4187564849853515625e-4 as Double)
    private static let minusDP3 = Float(-3.77489497744594108e-8 as Double)
    private static let sinP: [Float] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1].map { Float($0 as Double) }
    private static let cosP: [Float] = [2.443315711809948E-005, -1.388731625493765E-003, 4.166664568298827E-002]
        .map { Float($0 as Double) }
    private static let fourOverPi = Float(1.27323954473516 as Double)

    /// `log256_ps` for one lane (NaN for x ≤ 0).
    static func log(_ input: Float) -> Float {
        let invalid = input <= 0
        let clamped = max(input, Float(bitPattern: 0x0080_0000))
        var exponentBits = Int32(bitPattern: clamped.bitPattern >> 23)
        var x = Float(bitPattern: (clamped.bitPattern & ~0x7F80_0000) | Float(0.5).bitPattern)
        exponentBits -= 0x7F
        var e = Float(exponentBits)
        e = e + 1
        let belowSqrtHalf = x < sqrtHalf
        let tmp: Float = belowSqrtHalf ? x : 0
        x = x - 1
        e = e - (belowSqrtHalf ? 1 : 0)
        x = x + tmp
        let z = x * x
        var y = logP[0]
        for coefficient in logP.dropFirst() {
            y = coefficient.addingProduct(y, x)
        }
        y = y * x
        y = (e * logQ1).addingProduct(y, z)
        y = y.addingProduct(-z, 0.5)
        x = x + y
        x = x.addingProduct(e, logQ2)
        return invalid ? Float(bitPattern: 0xFFFF_FFFF) : x
    }

    /// `sincos256_ps` for one lane.
    static func sincos(_ input: Float) -> (sin: Float, cos: Float) {
        var signBitSin = input.bitPattern & 0x8000_0000
        var x = Float(bitPattern: input.bitPattern & 0x7FFF_FFFF)
        var y = x * fourOverPi
        // `_mm256_cvttps_epi32`: truncation toward zero, 0x80000000 when out of range.
        var octant = y < 2_147_483_648 ? Int32(y) : Int32.min
        octant = (octant &+ 1) & ~1
        y = Float(octant)
        let swapSignBitSin = UInt32(bitPattern: (octant & 4) << 29)
        let polynomialMask = octant & 2 == 0
        x = x.addingProduct(y, minusDP1)
        x = x.addingProduct(y, minusDP2)
        x = x.addingProduct(y, minusDP3)
        let cosOctant = octant &- 2
        let signBitCos = UInt32(bitPattern: (~cosOctant & 4) << 29)
        signBitSin ^= swapSignBitSin

        let z = x * x
        var cosine = cosP[1].addingProduct(cosP[0], z)
        cosine = cosP[2].addingProduct(cosine, z)
        cosine = cosine * z
        cosine = (-(z * 0.5)).addingProduct(cosine, z)
        cosine = cosine + 1

        var sine = sinP[1].addingProduct(sinP[0], z)
        sine = sinP[2].addingProduct(sine, z)
        sine = sine * z
        sine = x.addingProduct(sine, x)

        let sinFromSine: Float = polynomialMask ? sine : 0
        let sinFromCosine: Float = polynomialMask ? 0 : cosine
        sine = sine - sinFromSine
        cosine = cosine - sinFromCosine
        let sinResult = sinFromCosine + sinFromSine
        let cosResult = cosine + sine
        return (Float(bitPattern: sinResult.bitPattern ^ signBitSin), Float(bitPattern: cosResult.bitPattern ^ signBitCos))
    }
}
