import NunchakuCore
import SVDQuant

/// The device layout of an AWQ W4A16 layer for `awq_gemv.cu`: codes stay canonical (u8 [N, K/2], low nibble = even
/// k, natural channel order), so each warp reads one channel's codes as contiguous 16-byte runs; scales and zeros
/// move from [K/64, N] to [N, K/64] (one channel's groups side by side) in the activation dtype.
enum AWQDeviceLayout {
    /// The scales and zeros of `weights` as `type` bits, each [N, K/64].
    static func scalesAndZeros(_ weights: AWQW4A16Weights, as type: ActivationDType) -> (scales: [UInt16], zeros: [UInt16]) {
        let groups = weights.inFeatures / weights.groupSize, n = weights.outFeatures
        return (DeviceHalfValues.transposed(DeviceHalfValues.bits(weights.canonical.wscales, as: type), rows: groups, columns: n),
                DeviceHalfValues.transposed(DeviceHalfValues.bits(weights.canonical.wzeros, as: type), rows: groups, columns: n))
    }
}
