import NunchakuCore

/// A reproducible stream of standard normal numbers: SplitMix64 bits turned into normals by the Box–Muller transform.
///
/// Used for the random test matrices of the randomized SVD and for synthetic layers, so a seed fixes every result.
public struct SeededGaussian: Sendable {
    private var bits: SplitMix64
    private var spare: Double?

    public init(seed: UInt64) {
        bits = SplitMix64(seed: seed)
    }

    /// The next 64 random bits (SplitMix64).
    public mutating func nextBits() -> UInt64 { bits.next() }

    /// A uniform number in the open interval (0, 1).
    public mutating func nextUniform() -> Double {
        (Double(nextBits() >> 11) + 0.5) / Double(1 << 53)
    }

    /// The next standard normal number.
    public mutating func next() -> Double {
        if let value = spare {
            spare = nil
            return value
        }
        let radius = (-2 * ElementaryFunctions.naturalLogarithm(nextUniform())).squareRoot()
        let angle = 2 * Double.pi * nextUniform()
        spare = radius * ElementaryFunctions.sine(angle)
        return radius * ElementaryFunctions.cosine(angle)
    }

    /// `count` standard normal numbers as `Float`, each multiplied by `scale`.
    public mutating func floats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in Float(next()) * scale }
    }
}
