/// The 32-bit Mersenne Twister exactly as PyTorch's `at::mt19937` (the engine of a CPU `torch.Generator`):
/// seeded with the low 32 bits of the seed by the standard `init_genrand` recurrence.
struct MersenneTwister: Sendable {
    private static let stateCount = 624
    private static let shiftSize = 397

    private var state: [UInt32]
    private var remaining: Int
    private var nextIndex: Int

    init(seed: UInt64) {
        var state = [UInt32](repeating: 0, count: Self.stateCount)
        state[0] = UInt32(truncatingIfNeeded: seed)
        for index in 1..<Self.stateCount {
            let previous = state[index - 1]
            state[index] = 1_812_433_253 &* (previous ^ (previous >> 30)) &+ UInt32(index)
        }
        self.state = state
        remaining = 1
        nextIndex = 0
    }

    /// The next 32 random bits.
    mutating func next() -> UInt32 {
        remaining -= 1
        if remaining == 0 { regenerate() }
        var value = state[nextIndex]
        nextIndex += 1
        value ^= value >> 11
        value ^= (value << 7) & 0x9D2C_5680
        value ^= (value << 15) & 0xEFC6_0000
        value ^= value >> 18
        return value
    }

    private static func twist(_ upper: UInt32, _ lower: UInt32) -> UInt32 {
        let mixed = (upper & 0x8000_0000) | (lower & 0x7FFF_FFFF)
        return (mixed >> 1) ^ (lower & 1 == 1 ? 0x9908_B0DF : 0)
    }

    private mutating func regenerate() {
        let count = Self.stateCount
        let shift = Self.shiftSize
        for index in 0..<(count - 1) {
            let source = index < count - shift ? index + shift : index + shift - count
            state[index] = state[source] ^ Self.twist(state[index], state[index + 1])
        }
        state[count - 1] = state[shift - 1] ^ Self.twist(state[count - 1], state[0])
        remaining = count
        nextIndex = 0
    }
}
