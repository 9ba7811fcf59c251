import CPUBackend
import NunchakuCore

/// Conversions between Nunchaku's MMA-tiled W4A4 tensors and the canonical row-major layout
/// (docs/svdquant-layouts.md). All are pure permutations: `pack(unpack(x)) == x` bit for bit.
///
/// Canonical layout: `qweight` u8 [N, K/2] (low nibble = even k), group scales [K/G, N], per-channel vectors [N]
/// (or [K]) in natural channel order, `proj_down` [K, R], `proj_up` [N, R]. Packed tensors keep Nunchaku's nominal
/// shapes (the same shapes), only the element order differs.
public enum NunchakuW4A4Layout {
    // MARK: qweight (INT4 and NVFP4 codes alike)

    /// Nunchaku's tiled `qweight` (i8 [N, K/2]) from canonical codes (u8 or i8 [N, K/2]).
    public static func packWeight(_ canonical: Tensor, name: String = "qweight") throws -> Tensor {
        try permuteWeight(canonical, name: name, direction: .pack, outputDType: .i8)
    }

    /// Canonical codes (u8 [N, K/2]) from Nunchaku's tiled `qweight` (i8 or u8 [N, K/2]).
    public static func unpackWeight(_ packed: Tensor, name: String = "qweight") throws -> Tensor {
        try permuteWeight(packed, name: name, direction: .unpack, outputDType: .u8)
    }

    /// Byte offsets inside one 128×64 tile (4096 bytes) of the canonical byte pairs j = (k % 64) / 2 of a row,
    /// before the row's own offset: §2.2 `word = … *4 + k_lane)*4 + n_pack*2 + k_pack`, byte = word*4 + reg/2.
    private static let pairOffsetInTile: [Int] = (0..<32).map { pair in
        let k = 2 * pair
        let kPack = k / 32, kLane = (k % 32) / 8, register = k % 8
        return 16 * kLane + 4 * kPack + register / 2
    }

    /// The packed byte offset of row `n`'s first tile: tiles follow (n/128, k/64), rows inside a tile
    /// follow (n%128/16, n%8, n%16/8).
    private static func rowOffset(_ n: Int, kTiles: Int) -> Int {
        let block = n / 128, subTile = (n % 128) / 16, nPack = (n % 16) / 8, nLane = n % 8
        return 64 * ((block * kTiles * 8 + subTile) * 8 + nLane) + 8 * nPack
    }

    private static func permuteWeight(
        _ source: Tensor, name: String, direction: ElementPermutation.Direction, outputDType: DType
    ) throws -> Tensor {
        try LayoutCheck.dtype(source, [.u8, .i8], name)
        let (n, halfK) = try LayoutCheck.matrix(source, name)
        try LayoutCheck.multiple(n, of: 128, "N (rows)", name)
        try LayoutCheck.multiple(2 * halfK, of: 128, "K (2 × columns)", name)
        let kTiles = 2 * halfK / 64
        var result = Tensor(zeros: [n, halfK], dtype: outputDType)
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                let from = input.bindMemory(to: UInt8.self).baseAddress!
                let to = output.bindMemory(to: UInt8.self).baseAddress!
                pairOffsetInTile.withUnsafeBufferPointer { offsets in
                    parallelFor(n) { row in
                        let base = rowOffset(row, kTiles: kTiles), canonicalRow = row * halfK
                        for tile in 0..<kTiles {
                            let tileBase = base + tile * 4096, canonicalTile = canonicalRow + tile * 32
                            for pair in 0..<32 {
                                let packed = tileBase + offsets[pair], canonical = canonicalTile + pair
                                if direction == .pack { to[packed] = from[canonical] } else { to[canonical] = from[packed] }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    // MARK: INT4 group scales and per-channel vectors

    /// Position of channel `n` inside its 128-channel block: n%128 = a·16 + b·8 + c·2 + d → a·16 + c·4 + b·2 + d (§2.3).
    @inline(__always)
    static func channelSlot(_ n: Int) -> Int {
        let r = n % 128
        let a = r / 16, b = (r % 16) / 8, c = (r % 8) / 2, d = r % 2
        return a * 16 + c * 4 + b * 2 + d
    }

    /// Nunchaku's packed INT4 `wscales` from canonical [K/64, N] (16-bit floats).
    public static func packGroupScales(_ canonical: Tensor, name: String = "wscales") throws -> Tensor {
        try permuteGroupScales(canonical, name: name, direction: .pack)
    }

    /// Canonical [K/64, N] INT4 group scales from Nunchaku's packed `wscales`.
    public static func unpackGroupScales(_ packed: Tensor, name: String = "wscales") throws -> Tensor {
        try permuteGroupScales(packed, name: name, direction: .unpack)
    }

    private static func permuteGroupScales(
        _ source: Tensor, name: String, direction: ElementPermutation.Direction
    ) throws -> Tensor {
        try LayoutCheck.dtype(source, [.bf16, .f16], name)
        let (groups, n) = try LayoutCheck.matrix(source, name)
        try LayoutCheck.multiple(n, of: 128, "N (columns)", name)
        try LayoutCheck.multiple(groups, of: 2, "K/64 (rows)", name)
        return ElementPermutation.apply(source, shape: source.shape, dtype: source.dtype, rows: groups, direction: direction) {
            let g = $0 / n, channel = $0 % n
            return ((channel / 128) * groups + g) * 128 + channelSlot(channel)
        }
    }

    /// Nunchaku's packed order of a per-channel vector (`bias`, `smooth`, `smooth_orig`, `wcscales`) of length
    /// a multiple of 128 (§2.4: the group-scale permutation with one group).
    public static func packChannelVector(_ canonical: Tensor, name: String) throws -> Tensor {
        try permuteChannelVector(canonical, name: name, direction: .pack)
    }

    /// Natural channel order of a per-channel vector stored in Nunchaku's packed order.
    public static func unpackChannelVector(_ packed: Tensor, name: String) throws -> Tensor {
        try permuteChannelVector(packed, name: name, direction: .unpack)
    }

    private static func permuteChannelVector(
        _ source: Tensor, name: String, direction: ElementPermutation.Direction
    ) throws -> Tensor {
        guard source.rank == 1, !source.dtype.isPacked4Bit, source.dtype.bitWidth >= 8 else {
            throw NunchakuError.invalidArgument(context: name, reason: "expected a 1-D vector of whole-byte elements, got \(source.dtype) \(source.shape)")
        }
        try LayoutCheck.multiple(source.shape[0], of: 128, "length", name)
        return ElementPermutation.apply(source, shape: source.shape, dtype: source.dtype, rows: 1, direction: direction) {
            ($0 / 128) * 128 + channelSlot($0)
        }
    }

    // MARK: NVFP4 micro-scales

    /// Nunchaku's packed NVFP4 `wscales` (f8e4m3fn) from canonical [K/16, N] (§2.5).
    public static func packMicroScales(_ canonical: Tensor, name: String = "wscales") throws -> Tensor {
        try permuteMicroScales(canonical, name: name, direction: .pack)
    }

    /// Canonical [K/16, N] NVFP4 micro-scales from Nunchaku's packed `wscales`.
    public static func unpackMicroScales(_ packed: Tensor, name: String = "wscales") throws -> Tensor {
        try permuteMicroScales(packed, name: name, direction: .unpack)
    }

    private static func permuteMicroScales(
        _ source: Tensor, name: String, direction: ElementPermutation.Direction
    ) throws -> Tensor {
        try LayoutCheck.dtype(source, [.f8e4m3fn, .u8], name)
        let (groups, n) = try LayoutCheck.matrix(source, name)
        try LayoutCheck.multiple(n, of: 128, "N (columns)", name)
        try LayoutCheck.multiple(groups, of: 8, "K/16 (rows)", name)
        let chunks = groups / 4
        return ElementPermutation.apply(source, shape: source.shape, dtype: source.dtype, rows: groups, direction: direction) {
            let g = $0 / n, channel = $0 % n
            let r = channel % 128, s = r / 32, a = (r % 32) / 8, b = r % 8
            return (((((channel / 128) * chunks + g / 4) * 8 + b) * 4 + a) * 4 + s) * 4 + g % 4
        }
    }

    // MARK: Low-rank projections

    /// Element offset of (fragment row `fn`, fragment column `fk`) of the 16×16 tile (`outer`, `rankTile`) in a
    /// packed low-rank tensor (§2.6: m16n8k16 B fragments, lane = fn%8·4 + fk%8/2).
    @inline(__always)
    static func lowRankSlot(outer: Int, rankTile: Int, rankTiles: Int, fn: Int, fk: Int) -> Int {
        ((((outer * rankTiles + rankTile) * 8 + fn % 8) * 4 + (fk % 8) / 2) * 2 + fn / 8) * 4 + (fk / 8) * 2 + fk % 2
    }

    /// Nunchaku's packed `proj_down`/`lora_down` from canonical [K, R].
    public static func packLowRankDown(_ canonical: Tensor, name: String = "proj_down") throws -> Tensor {
        try permuteLowRank(canonical, down: true, name: name, direction: .pack)
    }

    /// Canonical [K, R] from Nunchaku's packed `proj_down`/`lora_down`.
    public static func unpackLowRankDown(_ packed: Tensor, name: String = "proj_down") throws -> Tensor {
        try permuteLowRank(packed, down: true, name: name, direction: .unpack)
    }

    /// Nunchaku's packed `proj_up`/`lora_up` from canonical [N, R].
    public static func packLowRankUp(_ canonical: Tensor, name: String = "proj_up") throws -> Tensor {
        try permuteLowRank(canonical, down: false, name: name, direction: .pack)
    }

    /// Canonical [N, R] from Nunchaku's packed `proj_up`/`lora_up`.
    public static func unpackLowRankUp(_ packed: Tensor, name: String = "proj_up") throws -> Tensor {
        try permuteLowRank(packed, down: false, name: name, direction: .unpack)
    }

    private static func permuteLowRank(
        _ source: Tensor, down: Bool, name: String, direction: ElementPermutation.Direction
    ) throws -> Tensor {
        try LayoutCheck.dtype(source, [.bf16, .f16], name)
        let (channels, rank) = try LayoutCheck.matrix(source, name)
        try LayoutCheck.multiple(channels, of: 16, down ? "K (rows)" : "N (rows)", name)
        guard rank % 16 == 0 else {
            throw NunchakuError.invalidArgument(context: name, reason: "rank = \(rank) is not a multiple of 16")
        }
        let rankTiles = rank / 16
        return ElementPermutation.apply(source, shape: source.shape, dtype: source.dtype, rows: channels, direction: direction) {
            let channel = $0 / rank, r = $0 % rank
            // down: the fragment's n axis is the rank, its k axis the input channel; up: n = output channel, k = rank.
            return down
                ? lowRankSlot(outer: channel / 16, rankTile: r / 16, rankTiles: rankTiles, fn: r % 16, fk: channel % 16)
                : lowRankSlot(outer: channel / 16, rankTile: r / 16, rankTiles: rankTiles, fn: channel % 16, fk: r % 16)
        }
    }
}
