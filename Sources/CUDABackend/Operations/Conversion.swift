import NunchakuCore

extension CUDAContext {
    /// `input` converted elementwise to `dtype` on the GPU: float32 → bfloat16 (round to nearest even) or
    /// bfloat16 → float32 (exact). Queued on `stream` (the input's stream when nil).
    /// - Throws: `NunchakuError.unsupported` for other dtype pairs; build, allocation and launch errors.
    public func convert(_ input: DeviceTensor, to dtype: DType, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let stream = stream ?? input.buffer.workStream
        let output = try DeviceTensor(shape: input.shape, dtype: dtype, context: self, stream: stream)
        try convert(input, into: output, stream: stream)
        return output
    }

    /// Writes `input` converted elementwise into `output` (same shape; dtypes as for `convert(_:to:stream:)`).
    public func convert(_ input: DeviceTensor, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let kernelName: String
        switch (input.dtype, output.dtype) {
        case (.f32, .bf16): kernelName = "nunchaku_convert_f32_to_bf16"
        case (.bf16, .f32): kernelName = "nunchaku_convert_bf16_to_f32"
        default:
            throw NunchakuError.unsupported(
                context: "CUDAContext.convert", reason: "\(input.dtype) → \(output.dtype) has no GPU kernel")
        }
        guard input.shape == output.shape else {
            throw NunchakuError.shapeMismatch(context: "CUDAContext.convert output", expected: input.shape, actual: output.shape)
        }
        guard input.elementCount > 0 else { return }
        let (grid, block) = conversionLaunchShape(elementCount: input.elementCount)
        try kernels.kernel(kernelName).launch(grid: grid, block: block, stream: stream ?? input.buffer.workStream,
                                              arguments: [input.argument, output.argument, .int64(Int64(input.elementCount))])
    }

    /// Grid and block for the conversion kernels: 256 threads, four elements per thread, at most 8 blocks per SM
    /// (the kernels loop over the rest).
    func conversionLaunchShape(elementCount: Int) -> (grid: CUDADim3, block: CUDADim3) {
        let threads = 256
        let groups = (elementCount + 3) / 4
        return (CUDADim3(max(1, min((groups + threads - 1) / threads, device.multiprocessorCount * 8))), CUDADim3(threads))
    }
}
