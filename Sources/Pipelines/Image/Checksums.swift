/// The checksums PNG files need: CRC-32 over each chunk and Adler-32 over the zlib stream's uncompressed bytes.
public enum Checksums {
    /// CRC-32 (ISO 3309 / ITU-T V.42, reflected polynomial 0xEDB88320, as PNG and zlib's `crc32`), continuing from
    /// `crc` (0 to start).
    public static func crc32(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        var value = ~crc
        for byte in bytes { value = crcTable[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8) }
        return ~value
    }

    /// Adler-32 (RFC 1950), continuing from `adler` (1 to start).
    public static func adler32(_ bytes: some Sequence<UInt8>, continuing adler: UInt32 = 1) -> UInt32 {
        let modulus: UInt32 = 65521
        var a = adler & 0xFFFF, b = adler >> 16, pending = 0
        for byte in bytes {
            a += UInt32(byte)
            b += a
            pending += 1
            // 5552 bytes is the most that can be summed before b could overflow 32 bits.
            if pending == 5552 {
                a %= modulus
                b %= modulus
                pending = 0
            }
        }
        return (b % modulus) << 16 | (a % modulus)
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }
}
