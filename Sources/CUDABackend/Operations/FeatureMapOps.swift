import NunchakuCore

extension CUDAContext {
    /// The 3×3 patches (padding 1) of pixels `firstPixel..<firstPixel + count` of one channels-last bf16 feature map
    /// `[H, W, C]` (C a multiple of 8): `patches` `[count, 9·C]`, row r = the nine neighbours of pixel `firstPixel + r`
    /// in (ky, kx) order, zeros outside the image (conv_im2col.cu). `input` may be a view of one sample (`sample`).
    /// - Throws: `NunchakuError` for wrong dtypes, shapes or ranges, before launching.
    public func im2col3x3(_ input: DeviceTensor, sample: Int = 0, height: Int, width: Int, firstPixel: Int, count: Int,
                          into patches: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "im2col3x3"
        let channels = try featureMapChannels(input, sample: sample, height: height, width: width, op)
        try OperandCheck.dtype(patches, .bf16, op, "patches")
        guard firstPixel >= 0, count >= 0, firstPixel + count <= height * width, patches.elementCount >= count * 9 * channels else {
            throw NunchakuError.invalidArgument(
                context: op, reason: "pixels \(firstPixel)..<\(firstPixel + count) of \(height)×\(width) into patches \(patches.shape)")
        }
        let offset = UInt64(sample * height * width * channels * 2)
        try launchElementwise("nunchaku_conv_im2col3x3_bf16", items: count * 9 * channels / 8, stream: stream ?? input.buffer.workStream,
                              arguments: [.pointer(input.buffer.address + offset), patches.argument, .int32(Int32(height)),
                                          .int32(Int32(width)), .int32(Int32(channels)), .int64(Int64(firstPixel)), .int64(Int64(count))])
    }

    /// Nearest-neighbour ×2 upsampling of channels-last bf16 maps: `input` `[B, H·W, C]` → `output` `[B, 4·H·W, C]`.
    /// - Throws: `NunchakuError` for wrong dtypes or shapes, before launching.
    public func upsampleNearest2x(_ input: DeviceTensor, height: Int, width: Int, into output: DeviceTensor,
                                  stream: CUDAStream? = nil) throws {
        let op = "upsampleNearest2x"
        let channels = try featureMapChannels(input, sample: 0, height: height, width: width, op)
        let batch = input.shape[0]
        try OperandCheck.dtype(output, .bf16, op, "output")
        try OperandCheck.shape(output, [batch, 4 * height * width, channels], op, "output")
        for sample in 0..<batch {
            let inOffset = UInt64(sample * height * width * channels * 2)
            try launchElementwise("nunchaku_conv_upsample2x_bf16", items: 4 * height * width * channels / 8,
                                  stream: stream ?? input.buffer.workStream,
                                  arguments: [.pointer(input.buffer.address + inOffset), .pointer(output.buffer.address + 4 * inOffset),
                                              .int32(Int32(height)), .int32(Int32(width)), .int32(Int32(channels))])
        }
    }

    /// The channel count of a bf16 feature map `[B, H·W, C]` with C a multiple of 8 and `sample < B`.
    func featureMapChannels(_ map: DeviceTensor, sample: Int, height: Int, width: Int, _ op: String) throws -> Int {
        try OperandCheck.dtype(map, .bf16, op, "input")
        try OperandCheck.rank(map, 3, op, "input")
        let channels = try OperandCheck.width(map, multipleOf: 8, op, "input")
        guard map.shape[1] == height * width, (0..<map.shape[0]).contains(sample) else {
            throw NunchakuError.shapeMismatch(context: "\(op) input (sample \(sample))", expected: [map.shape[0], height * width, channels], actual: map.shape)
        }
        return channels
    }
}
