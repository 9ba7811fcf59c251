import NunchakuCore
import SVDQuant

extension CUDASVDQW4A4Linear {
    /// The layer's low-rank branch downloaded in canonical order: `projDown` [K, R] and `projUp` [N, R] in the
    /// activation dtype (what `init(sharingQuantizedWeightsOf:projDown:projUp:stream:)` takes back).
    public func lowRankTensors(stream: CUDAStream? = nil) throws -> (projDown: Tensor, projUp: Tensor) {
        let device = try projDown.download(stream: stream).contiguous().withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        // packLowRankDown moves canonical element i to some device index; packing the indices themselves says where.
        let canonicalIndex = W4A4FragmentLayout.packLowRankDown(Array(0..<(inFeatures * rank)), inFeatures: inFeatures, rank: rank, precision: precision)
        var canonical = [UInt16](repeating: 0, count: device.count)
        for (deviceIndex, index) in canonicalIndex.enumerated() { canonical[index] = device[deviceIndex] }
        let down = try DeviceHalfValues.tensor(canonical, shape: [inFeatures, rank], type: activationDType)
        return (down, try projUp.download(stream: stream))
    }
}
