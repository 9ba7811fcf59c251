/// A second, independent formulation of Nunchaku's packers: the reshape/permute form of the reference packers
/// (research/nunchaku-internals.md §2, nunchaku `packer.py`, TinyChat `pack_w4`), written with a generic
/// `permuted(_:shape:axes:)` instead of the closed-form index arithmetic the library uses.
enum ReshapePermuteReference {
    /// numpy's `values.reshape(shape).transpose(axes).ravel()`.
    static func permuted<T>(_ values: [T], shape: [Int], axes: [Int]) -> [T] {
        precondition(values.count == shape.reduce(1, *) && axes.sorted() == Array(shape.indices))
        var sourceStrides = [Int](repeating: 1, count: shape.count)
        for axis in shape.indices.dropLast().reversed() { sourceStrides[axis] = sourceStrides[axis + 1] * shape[axis + 1] }
        let outputShape = axes.map { shape[$0] }
        let strides = axes.map { sourceStrides[$0] }
        var result = [T]()
        result.reserveCapacity(values.count)
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for _ in 0..<values.count {
            result.append(values[offset])
            for axis in index.indices.reversed() {
                index[axis] += 1
                offset += strides[axis]
                if index[axis] < outputShape[axis] { break }
                index[axis] = 0
                offset -= strides[axis] * outputShape[axis]
            }
        }
        return result
    }

    static func transposed<T>(_ values: [T], rows: Int, columns: Int) -> [T] {
        permuted(values, shape: [rows, columns], axes: [1, 0])
    }

    /// Nibble codes (one per element) of a u8 [rows, columns/2] byte array, low nibble first.
    static func nibbles(_ bytes: [UInt8]) -> [UInt8] { bytes.flatMap { [$0 & 0xF, $0 >> 4] } }

    /// Consecutive pairs of codes packed into bytes, the first in the low nibble.
    static func pairs(_ codes: [UInt8]) -> [UInt8] {
        stride(from: 0, to: codes.count, by: 2).map { codes[$0] & 0xF | codes[$0 + 1] << 4 }
    }

    /// `qweight`: codes [N, K] viewed as (N/128, 8, 2, 8, 1, K/64, 1, 2, 4, 8), permuted to
    /// (n_tiles, k_tiles, 1, n_packs, n_lanes, k_lanes, n_pack, k_pack, 1, reg), 8 codes per u32 (little endian).
    static func packWeight(_ canonical: [UInt8], n: Int, k: Int) -> [UInt8] {
        let codes = nibbles(canonical)
        return pairs(permuted(codes, shape: [n / 128, 8, 2, 8, 1, k / 64, 1, 2, 4, 8], axes: [0, 5, 6, 1, 3, 8, 2, 7, 4, 9]))
    }

    /// INT4 `wscales`: canonical [G, N] → [N, G] viewed as (N/128, 1, 8, 2, 4, 2, G), permuted to
    /// (block, G, 1, 8, 4, 2, 2): lane (a, c) holds channels a·16 + {2c, 2c+1, 8+2c, 8+2c+1}.
    static func packGroupScales<T>(_ canonical: [T], groups: Int, n: Int) -> [T] {
        permuted(transposed(canonical, rows: groups, columns: n), shape: [n / 128, 1, 8, 2, 4, 2, groups], axes: [0, 6, 1, 2, 4, 3, 5])
    }

    /// NVFP4 micro-scales: canonical [K/16, N] → [N, K/16] viewed as (N/128, 1, 4, 4, 8, K/64, 4), permuted to
    /// (block, K/64, 1, 8, 4, 4, 4).
    static func packMicroScales<T>(_ canonical: [T], groups: Int, n: Int) -> [T] {
        permuted(transposed(canonical, rows: groups, columns: n), shape: [n / 128, 1, 4, 4, 8, groups / 4, 4], axes: [0, 5, 1, 4, 3, 2, 6])
    }

    /// Low-rank tiles: a [rowsOf16·16, R] matrix whose 16×16 tiles are ordered (row tile, rank tile) and whose
    /// tile elements (fn, fk) are viewed as (2, 8, 1, 2, 4, 2) and permuted to (8, 4, 2, 2, 1, 2).
    private static func packTiles<T>(_ tiles: [T], outerTiles: Int, rankTiles: Int) -> [T] {
        permuted(tiles, shape: [outerTiles, rankTiles, 2, 8, 1, 2, 4, 2], axes: [0, 1, 3, 6, 2, 5, 4, 7])
    }

    /// `proj_down`: canonical [K, R] is lora_A [R, K] transposed; lora_A viewed as (R/16, 16, K/16, 16) and
    /// permuted to (K/16, R/16, 16, 16) so the rank is the fragment's n axis.
    static func packLowRankDown<T>(_ canonical: [T], k: Int, rank: Int) -> [T] {
        let loraA = transposed(canonical, rows: k, columns: rank)
        let tiles = permuted(loraA, shape: [rank / 16, 16, k / 16, 16], axes: [2, 0, 1, 3])
        return packTiles(tiles, outerTiles: k / 16, rankTiles: rank / 16)
    }

    /// `proj_up`: canonical [N, R] viewed as (N/16, 16, R/16, 16), permuted to (N/16, R/16, 16, 16).
    static func packLowRankUp<T>(_ canonical: [T], n: Int, rank: Int) -> [T] {
        let tiles = permuted(canonical, shape: [n / 16, 16, rank / 16, 16], axes: [0, 2, 1, 3])
        return packTiles(tiles, outerTiles: n / 16, rankTiles: rank / 16)
    }

    /// TinyChat `pack_w4`: each 32 inputs of a row become 8 int16 (element p·8 + j → nibble p of int16 j), the
    /// int16 array viewed as (N/4, 4, K/64, 16) and permuted to (N/4, K/64, 4, 16); little-endian bytes.
    static func packAWQWeight(_ canonical: [UInt8], n: Int, k: Int) -> [UInt8] {
        let codes = nibbles(canonical)
        var words = [UInt16]()
        for block in stride(from: 0, to: codes.count, by: 32) {
            for j in 0..<8 {
                words.append((0..<4).reduce(UInt16(0)) { $0 | UInt16(codes[block + 8 * $1 + j]) << (4 * $1) })
            }
        }
        return permuted(words, shape: [n / 4, 4, k / 64, 16], axes: [0, 2, 1, 3]).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
    }

    /// deepcompressor's adaLN reorder: rows (or elements) viewed as (S, N/S, rest) and transposed to (N/S, S, rest).
    static func interleave<T>(_ values: [T], chunks: Int, n: Int) -> [T] {
        permuted(values, shape: [chunks, n / chunks, values.count / n], axes: [1, 0, 2])
    }
}
