/// A 64-bit FNV-1a hash, used to recognise the same weights, calibration rows or settings again (resuming a
/// quantization). Not cryptographic.
public struct ContentHash: Sendable {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    /// Mixes in raw bytes.
    public mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        var hash = value
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        value = hash
    }

    /// Mixes in the bytes of `values`.
    public mutating func combine(_ values: [Float]) {
        values.withUnsafeBytes { combine($0) }
    }

    /// Mixes in a string's UTF-8 bytes and a terminator (so "ab"+"c" differs from "a"+"bc").
    public mutating func combine(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0)
        bytes.withUnsafeBytes { combine($0) }
    }

    /// The value as 16 hex digits.
    public var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The hash of one string.
    public static func of(_ text: String) -> UInt64 {
        var hash = ContentHash()
        hash.combine(text)
        return hash.value
    }
}
