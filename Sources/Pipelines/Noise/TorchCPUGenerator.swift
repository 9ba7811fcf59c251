import Foundation

/// A CPU `torch.Generator` after `manual_seed(seed)`: the Mersenne Twister plus the cached second Box–Muller
/// value of `normal_distribution<double>`, so consecutive draws continue the stream the way PyTorch does.
public struct TorchCPUGenerator: Sendable {
    private var engine: MersenneTwister
    private var cachedDoubleNormal: Double?

    /// `torch.Generator("cpu").manual_seed(seed)`.
    public init(seed: UInt64) {
        engine = MersenneTwister(seed: seed)
    }

    /// `random()`: 32 random bits.
    mutating func random32() -> UInt32 { engine.next() }

    /// `random64()`: two draws, the first as the high half.
    mutating func random64() -> UInt64 {
        let high = UInt64(engine.next())
        return high << 32 | UInt64(engine.next())
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits scaled to [0, 1).
    mutating func uniformFloat() -> Float {
        Float(random32() & 0xFF_FFFF) * (1 / Float(1 << 24))
    }

    /// `uniform_real_distribution<double>(0, 1)`: 53 random bits scaled to [0, 1).
    mutating func uniformDouble() -> Double {
        Double(random64() & ((1 << 53) - 1)) * (1 / Double(UInt64(1) << 53))
    }

    /// `normal_distribution<double>(0, 1)`: Box–Muller on two double uniforms; the sine half is cached for the
    /// next call.
    mutating func standardNormalDouble() -> Double {
        if let cached = cachedDoubleNormal {
            cachedDoubleNormal = nil
            return cached
        }
        let u1 = uniformDouble()
        let u2 = uniformDouble()
        let radius = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedDoubleNormal = radius * sin(theta)
        return radius * cos(theta)
    }
}
