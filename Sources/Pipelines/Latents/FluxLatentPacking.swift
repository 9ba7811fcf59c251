import NunchakuCore

/// diffusers' `_pack_latents` / `_unpack_latents` and the position ids FLUX's rotary embedding reads.
public enum FluxLatentPacking {
    /// `[B, C, H, W] → [B, (H/2)(W/2), 4C]`: each 2×2 patch becomes one token whose features are ordered
    /// `c·4 + dy·2 + dx`, tokens in row-major patch order. Works for any dtype of whole bytes.
    /// - Throws: `NunchakuError` for a tensor that is not rank 4 with even height and width, or a packed 4-bit dtype.
    public static func pack(_ latents: Tensor) throws -> Tensor {
        guard latents.rank == 4, latents.shape[2] % 2 == 0, latents.shape[3] % 2 == 0 else {
            throw NunchakuError.invalidArgument(
                context: "pack latents", reason: "expected [batch, channels, even height, even width], got \(latents.shape)")
        }
        let (batch, channels, height, width) = (latents.shape[0], latents.shape[1], latents.shape[2], latents.shape[3])
        let packedShape = [batch, (height / 2) * (width / 2), channels * 4]
        return try permute(latents, to: packedShape) { b, token, feature in
            let (row, column) = token.quotientAndRemainder(dividingBy: width / 2)
            let (channel, offset) = feature.quotientAndRemainder(dividingBy: 4)
            let (dy, dx) = offset.quotientAndRemainder(dividingBy: 2)
            return ((b * channels + channel) * height + 2 * row + dy) * width + 2 * column + dx
        }
    }

    /// The inverse of `pack` for an image of `geometry`: `[B, tokens, 4C] → [B, C, latentHeight, latentWidth]`.
    /// - Throws: `NunchakuError.shapeMismatch` when the token count does not match the geometry or the feature
    ///   count is not a multiple of 4.
    public static func unpack(_ packed: Tensor, geometry: FluxLatentGeometry) throws -> Tensor {
        let height = geometry.latentHeight
        let width = geometry.latentWidth
        guard packed.rank == 3, packed.shape[1] == geometry.tokenCount, packed.shape[2] % 4 == 0 else {
            throw NunchakuError.shapeMismatch(
                context: "unpack latents for \(geometry.height)×\(geometry.width)",
                expected: [packed.shape.first ?? 1, geometry.tokenCount, FluxLatentGeometry.channels * 4], actual: packed.shape)
        }
        let (batch, tokens, features) = (packed.shape[0], packed.shape[1], packed.shape[2])
        return try permute(packed, to: [batch, features / 4, height, width]) { b, channel, spatial in
            let (y, x) = spatial.quotientAndRemainder(dividingBy: width)
            let token = (y / 2) * (width / 2) + x / 2
            let feature = channel * 4 + (y % 2) * 2 + x % 2
            return (b * tokens + token) * features + feature
        }
    }

    /// `txt_ids`: `[count, 3]` zeros (f32).
    public static func textPositionIDs(count: Int) -> Tensor {
        Tensor(zeros: [count, 3], dtype: .f32)
    }

    /// `img_ids`: `[tokenCount, 3]` holding `(0, row, column)` of each 2×2 patch, row-major (f32).
    public static func imagePositionIDs(geometry: FluxLatentGeometry) -> Tensor {
        let rows = geometry.latentHeight / 2
        let columns = geometry.latentWidth / 2
        var values = [Float](repeating: 0, count: rows * columns * 3)
        for row in 0..<rows {
            for column in 0..<columns {
                values[(row * columns + column) * 3 + 1] = Float(row)
                values[(row * columns + column) * 3 + 2] = Float(column)
            }
        }
        return Tensor(values, shape: [rows * columns, 3], dtype: .f32)
    }

    /// A tensor of `shape` whose element (b, i, j) — `j` running over everything after axis 1 — is the source
    /// element at the flat index `sourceIndex(b, i, j)`.
    private static func permute(_ source: Tensor, to shape: [Int], sourceIndex: (Int, Int, Int) -> Int) throws -> Tensor {
        guard !source.dtype.isPacked4Bit else {
            throw NunchakuError.unsupported(context: "latent packing", reason: "packed \(source.dtype) tensors cannot be rearranged")
        }
        let elementBytes = source.dtype.bitWidth / 8
        let inner = shape.dropFirst(2).reduce(1, *)
        var result = Tensor(zeros: shape, dtype: source.dtype)
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                var target = 0
                for b in 0..<shape[0] {
                    for i in 0..<shape[1] {
                        for j in 0..<inner {
                            let from = sourceIndex(b, i, j) * elementBytes
                            output.baseAddress!.advanced(by: target)
                                .copyMemory(from: input.baseAddress!.advanced(by: from), byteCount: elementBytes)
                            target += elementBytes
                        }
                    }
                }
            }
        }
        return result
    }
}
