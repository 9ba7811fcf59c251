import CPUBackend
import NunchakuCore

/// Conversions between TinyChat's "interleave-4" AWQ W4A16 `qweight` (int32 [N/4, K/2], §2.7) and canonical
/// codes (u8 [N, K/2], unsigned 4-bit, low nibble = even k). Pure permutations of nibbles.
public enum NunchakuAWQLayout {
    /// Packed int32 [N/4, K/2] from canonical u8 [N, K/2] codes (rows in the order the packed tensor uses).
    public static func packWeight(_ canonical: Tensor, name: String = "qweight") throws -> Tensor {
        try LayoutCheck.dtype(canonical, [.u8, .i8], name)
        let (n, halfK) = try LayoutCheck.matrix(canonical, name)
        try check(n: n, k: 2 * halfK, name)
        return permute(from: canonical, shape: [n / 4, halfK], dtype: .i32, n: n, k: 2 * halfK, pack: true)
    }

    /// Canonical u8 [N, K/2] codes from packed int32 [N/4, K/2].
    public static func unpackWeight(_ packed: Tensor, name: String = "qweight") throws -> Tensor {
        try LayoutCheck.dtype(packed, [.i32, .u32], name)
        let (quads, halfK) = try LayoutCheck.matrix(packed, name)
        try check(n: 4 * quads, k: 2 * halfK, name)
        return permute(from: packed, shape: [4 * quads, halfK], dtype: .u8, n: 4 * quads, k: 2 * halfK, pack: false)
    }

    private static func check(n: Int, k: Int, _ name: String) throws {
        try LayoutCheck.multiple(n, of: 4, "N", name)
        try LayoutCheck.multiple(k, of: 64, "K", name)
    }

    /// The packed nibble of code (o, i): int16 index L = ((o/4)·(K/64) + i/64)·64 + (o%4)·16 + ((i/32)%2)·8 + i%8,
    /// nibble position (i%32)/8 inside it (little endian).
    @inline(__always)
    private static func packedNibble(row o: Int, column i: Int, groups: Int) -> Int {
        let word = ((o / 4) * groups + i / 64) * 64 + (o % 4) * 16 + ((i / 32) % 2) * 8 + i % 8
        return word * 4 + (i % 32) / 8
    }

    private static func permute(from source: Tensor, shape: [Int], dtype: DType, n: Int, k: Int, pack: Bool) -> Tensor {
        var result = Tensor(zeros: shape, dtype: dtype)
        let groups = k / 64
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                let from = input.bindMemory(to: UInt8.self).baseAddress!
                let to = output.bindMemory(to: UInt8.self).baseAddress!
                // Each canonical row owns whole bytes on both sides, so rows can run in parallel.
                parallelFor(n) { row in
                    for column in 0..<k {
                        let canonical = row * k + column
                        let packed = packedNibble(row: row, column: column, groups: groups)
                        let (source, destination) = pack ? (canonical, packed) : (packed, canonical)
                        let code = (from[source / 2] >> (4 * UInt8(source % 2))) & 0xF
                        let shift = 4 * UInt8(destination % 2)
                        to[destination / 2] = (to[destination / 2] & ~(0xF << shift)) | (code << shift)
                    }
                }
            }
        }
        return result
    }
}

/// The output-channel order of Nunchaku's adaLN modulation linears (`norm1.linear`, `norm1_context.linear`,
/// single `norm.linear`, Qwen-Image `img_mod.1`/`txt_mod.1`): the `chunks` outputs (shift, scale, gate, …) of
/// width D = N / chunks are interleaved, packed channel `d·chunks + s` = natural channel `s·D + d` (§2.7).
public struct ModulationInterleave: Sendable, Equatable {
    /// S: 6 for FLUX double-block `norm1*`, 3 for single-block `norm.linear`.
    public let chunks: Int

    public init(chunks: Int) throws {
        guard chunks >= 2 else {
            throw NunchakuError.invalidArgument(context: "ModulationInterleave", reason: "chunk count \(chunks) must be at least 2")
        }
        self.chunks = chunks
    }

    /// The packed position of natural output channel `channel` of a layer with `outputs` channels.
    @inline(__always)
    public func packedChannel(_ channel: Int, outputs: Int) -> Int {
        let width = outputs / chunks
        return (channel % width) * chunks + channel / width
    }

    /// The chunks whose bias carries the folded "+1" of the scales: deepcompressor adds 1 (in the bias dtype) to
    /// chunk 1 and to chunk S−2 (`delta[1] = delta[-2] = 1`: scale_msa and scale_mlp for S = 6, scale_msa alone for
    /// S = 3), so the runtime computes `x·scale + shift` with no "+1".
    public var scaleChunks: [Int] {
        Array(Set([1, chunks - 2])).sorted()
    }
}
