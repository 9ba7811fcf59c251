import NunchakuCore
@testable import SVDQuant

/// The seeded generator of randomized tests, so failures reproduce.
typealias SeededGenerator = SplitMix64

func randomBytes(_ count: Int, _ rng: inout SeededGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// Random values in `range`, already rounded to `dtype`.
func randomValues(_ count: Int, in range: ClosedRange<Float>, _ dtype: ActivationDType, _ rng: inout SeededGenerator) -> [Float] {
    (0..<count).map { _ in dtype.round(Float.random(in: range, using: &rng)) }
}

func halfTensor(_ values: [Float], _ shape: [Int], _ dtype: ActivationDType) -> Tensor {
    TensorValues.tensor(values, shape: shape, dtype: dtype.dtype)
}

func bytesTensor(_ bytes: [UInt8], _ shape: [Int], _ dtype: DType) -> Tensor {
    TensorValues.bytesTensor(bytes, shape: shape, dtype: dtype)
}

/// Random 16-bit tensor whose bits are arbitrary finite values (any sign, exponent, mantissa).
func randomFiniteHalfBits(_ shape: [Int], _ dtype: ActivationDType, _ rng: inout SeededGenerator) -> Tensor {
    let count = shape.reduce(1, *)
    var bytes = [UInt8]()
    bytes.reserveCapacity(2 * count)
    while bytes.count < 2 * count {
        let bits = UInt16.random(in: 0...UInt16.max, using: &rng)
        guard dtype.value(bits).isFinite else { continue }
        bytes.append(UInt8(bits & 0xFF))
        bytes.append(UInt8(bits >> 8))
    }
    return bytesTensor(bytes, shape, dtype.dtype)
}

/// The error thrown by `body`, or nil when it returns.
func thrownError(_ body: () throws -> Void) -> NunchakuError? {
    do {
        try body()
        return nil
    } catch let error as NunchakuError {
        return error
    } catch {
        return nil
    }
}

/// Whether a `NunchakuError`'s description mentions every fragment.
func mentions(_ error: NunchakuError?, _ fragments: String...) -> Bool {
    guard let error else { return false }
    return fragments.allSatisfy { error.description.contains($0) }
}
