import NunchakuCore

/// The latent grid of a FLUX image: the VAE downsamples by 8, and the transformer sees 2×2 patches of the 16
/// latent channels, so the latent height and width are `2·⌊H/16⌋` and `2·⌊W/16⌋` (diffusers' `prepare_latents`).
public struct FluxLatentGeometry: Sendable, Equatable {
    /// Latent channels of the FLUX VAE.
    public static let channels = 16

    /// The image size in pixels.
    public let height: Int
    public let width: Int

    /// - Throws: `NunchakuError.invalidArgument` when a side is below 16 pixels.
    public init(height: Int, width: Int) throws {
        guard height >= 16, width >= 16 else {
            throw NunchakuError.invalidArgument(context: "FLUX image size",
                                                reason: "\(height)×\(width) pixels; each side needs at least 16")
        }
        self.height = height
        self.width = width
    }

    /// Rows of the unpacked latent.
    public var latentHeight: Int { 2 * (height / 16) }
    /// Columns of the unpacked latent.
    public var latentWidth: Int { 2 * (width / 16) }
    /// Image tokens the transformer sees (`image_seq_len`, which sets the scheduler's shift).
    public var tokenCount: Int { (height / 16) * (width / 16) }

    /// The shape of the initial noise, `[batch, 16, latentHeight, latentWidth]`.
    public func noiseShape(batch: Int = 1) -> [Int] {
        [batch, Self.channels, latentHeight, latentWidth]
    }

    /// The shape of packed latents, `[batch, tokenCount, 64]`.
    public func packedShape(batch: Int = 1) -> [Int] {
        [batch, tokenCount, Self.channels * 4]
    }
}
