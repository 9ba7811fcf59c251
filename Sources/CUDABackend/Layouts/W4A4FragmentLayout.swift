import CPUBackend
import SVDQuant

/// Where the W4A4 kernels keep each 4-bit code and each low-rank down weight: the device layouts, and the CPU-side
/// repacking from (and back to) the canonical row-major layout of `SVDQW4A4Weights` / `QuantizedActivations`.
///
/// K is cut into 64-wide chunks. In a chunk, the lane `(g, t) = (lane / 4, lane % 4)` of a warp owns, for each of its
/// rows, two 32-bit words `h = 0, 1` of eight 4-bit codes (nibble `i` at bits 4i…4i+3), holding input `k` of the chunk:
/// - INT4: `k = 32h + 8t + i` — exactly the operand fragments of the 4-bit `mma.sync` m16n8k64;
/// - NVFP4: `k = 32h + 16(i / 4) + 4t + i % 4` — each 16-wide group is one int8 m16n8k16 after decoding.
///
/// Activations (`codes`, u8 [Mpad, K/2] nominally): per 16-row tile, chunk and lane one 16-byte fragment, words in
/// the order (h0, row g), (h0, row g+8), (h1, row g), (h1, row g+8) — the A registers a0…a3.
/// Weights (u8 [N, K/2] nominally): per 16-row tile of output channels, chunk and lane one 16-byte fragment, words
/// (n8 half s, h) at index 2s + h for channel 8s + g — the B registers of two n8 tiles.
/// Low-rank down (16-bit [K, R] nominally): per chunk, 8-rank tile and lane eight words; word 4h + 2j + b holds the
/// pair of `proj_down` rows at the lane's nibble slots (4j + 2b, 4j + 2b + 1) of word h, for rank 8·tile + g — the B
/// registers of the k16 products that the quantize kernel runs on the same registers it quantizes.
/// Tensor-core products sum over k, so only the pairing of A and B matters; this layout pairs them as the
/// canonical dot product does (checked by W4A4FragmentLayoutTests with the PTX ISA fragment maps).
public enum W4A4FragmentLayout {
    /// Rows of the activation buffers are padded to a multiple of this (the GEMM's block height).
    public static let rowAlignment = 128

    /// The position of input `k` (0..<64) of a chunk: the lane part `t`, the word `h` and the nibble `i`.
    public static func slot(ofChunkColumn column: Int, precision: SVDQuantPrecision) -> (t: Int, h: Int, i: Int) {
        let h = column / 32, rest = column % 32
        switch precision {
        case .int4: return (rest / 8, h, rest % 8)
        case .nvfp4: return ((rest % 16) / 4, h, 4 * (rest / 16) + rest % 4)
        }
    }

    /// M rounded up to the row alignment.
    public static func paddedRows(_ rows: Int) -> Int {
        (rows + rowAlignment - 1) / rowAlignment * rowAlignment
    }

    /// The device nibble index of activation code (row, k).
    static func activationNibble(row: Int, column k: Int, inFeatures: Int, precision: SVDQuantPrecision) -> Int {
        let (t, h, i) = slot(ofChunkColumn: k % 64, precision: precision)
        let lane = 4 * (row % 8) + t
        let word = (((row / 16) * (inFeatures / 64) + k / 64) * 32 + lane) * 4 + 2 * h + (row % 16) / 8
        return word * 8 + i
    }

    /// The device nibble index of weight code (channel n, k).
    static func weightNibble(channel n: Int, column k: Int, inFeatures: Int, precision: SVDQuantPrecision) -> Int {
        let (t, h, i) = slot(ofChunkColumn: k % 64, precision: precision)
        let lane = 4 * (n % 8) + t
        let word = (((n / 16) * (inFeatures / 64) + k / 64) * 32 + lane) * 4 + 2 * ((n % 16) / 8) + h
        return word * 8 + i
    }

    /// The device element index of low-rank down weight (k, r) for rank `rank`.
    static func lowRankDownElement(column k: Int, rankIndex r: Int, rank: Int, precision: SVDQuantPrecision) -> Int {
        let (t, h, i) = slot(ofChunkColumn: k % 64, precision: precision)
        let lane = 4 * (r % 8) + t
        let word = (((k / 64) * (rank / 8) + r / 8) * 32 + lane) * 8 + 4 * h + 2 * (i / 4) + (i % 4) / 2
        return word * 2 + i % 2
    }

    /// Canonical u8 [rows, K/2] codes (low nibble = even k) in the device activation order, rows padded with zero
    /// codes to `paddedRows`.
    public static func packActivationCodes(_ codes: [UInt8], rows: Int, paddedRows: Int, inFeatures: Int, precision: SVDQuantPrecision) -> [UInt8] {
        var device = [UInt8](repeating: 0, count: paddedRows * inFeatures / 2)
        moveNibbles(from: codes, to: &device, rows: rows, inFeatures: inFeatures, toDevice: true) { row, k in
            activationNibble(row: row, column: k, inFeatures: inFeatures, precision: precision)
        }
        return device
    }

    /// The first `rows` rows of device-order activation codes as canonical u8 [rows, K/2].
    public static func unpackActivationCodes(_ device: [UInt8], rows: Int, inFeatures: Int, precision: SVDQuantPrecision) -> [UInt8] {
        var codes = [UInt8](repeating: 0, count: rows * inFeatures / 2)
        moveNibbles(from: device, to: &codes, rows: rows, inFeatures: inFeatures, toDevice: false) { row, k in
            activationNibble(row: row, column: k, inFeatures: inFeatures, precision: precision)
        }
        return codes
    }

    /// Canonical u8 [N, K/2] weight codes in the device weight order.
    public static func packWeightCodes(_ codes: [UInt8], outFeatures: Int, inFeatures: Int, precision: SVDQuantPrecision) -> [UInt8] {
        var device = [UInt8](repeating: 0, count: outFeatures * inFeatures / 2)
        moveNibbles(from: codes, to: &device, rows: outFeatures, inFeatures: inFeatures, toDevice: true) { n, k in
            weightNibble(channel: n, column: k, inFeatures: inFeatures, precision: precision)
        }
        return device
    }

    /// Canonical [K, R] low-rank down elements (any element type) in the device order.
    public static func packLowRankDown<Element>(_ down: [Element], inFeatures: Int, rank: Int, precision: SVDQuantPrecision) -> [Element] {
        guard let first = down.first else { return [] }
        var device = [Element](repeating: first, count: down.count)
        for k in 0..<inFeatures {
            for r in 0..<rank {
                device[lowRankDownElement(column: k, rankIndex: r, rank: rank, precision: precision)] = down[k * rank + r]
            }
        }
        return device
    }

    /// Moves every code (row, k) between canonical index `row · K + k` and device index `deviceIndex(row, k)`, rows in
    /// parallel (in both layouts the words of different rows are disjoint).
    private static func moveNibbles(
        from source: [UInt8], to destination: inout [UInt8], rows: Int, inFeatures: Int, toDevice: Bool,
        deviceIndex: (Int, Int) -> Int
    ) {
        source.withUnsafeBufferPointer { source in
            destination.withUnsafeMutableBufferPointer { destination in
                parallelFor(rows) { row in
                    for k in 0..<inFeatures {
                        let canonical = row * inFeatures + k, device = deviceIndex(row, k)
                        let (from, to) = toDevice ? (canonical, device) : (device, canonical)
                        let code = (source[from / 2] >> (4 * UInt8(from % 2))) & 0xF
                        let shift = 4 * UInt8(to % 2)
                        destination[to / 2] = (destination[to / 2] & ~(0xF << shift)) | (code << shift)
                    }
                }
            }
        }
    }
}
