import NunchakuCore

/// The outcome of running the conversion kernels on the GPU against the CPU.
public struct KernelSelfCheckResult: Sendable, Codable {
    public let kernels: [String]
    public let target: String
    public let elements: Int
    /// float32 → bfloat16 results whose bits differ from the CPU's (NaN matches any NaN).
    public let conversionMismatches: Int
    /// bfloat16 → float32 results whose bits differ from the CPU's.
    public let roundTripMismatches: Int
    /// The first mismatch, described, when there is one.
    public let firstMismatch: String?
    /// GPU time of one float32 → bfloat16 conversion, after a warm-up run.
    public let conversionMilliseconds: Double
    /// How each kernel file was obtained (compiled now or from the cache).
    public let builds: [KernelBuildRecord]
    /// Registers per thread and local (spill) bytes of each kernel, as the driver reports them.
    public let resources: [KernelResourceUsage]
    /// The dynamic shared memory the checked f32 → bf16 launch asked for (the device's opt-in maximum, so the
    /// above-48-KiB path through `setMaxDynamicSharedMemory` is exercised).
    public let checkedLaunchSharedBytes: Int
    /// Every element of both kernels matched.
    public let passed: Bool
}

/// What the compiler gave one kernel.
public struct KernelResourceUsage: Sendable, Codable {
    public let kernel: String
    public let registers: Int
    public let localBytes: Int
}

/// Runs the float32 ↔ bfloat16 kernels on random and special values and compares every bit with the CPU.
public enum KernelSelfCheck {
    /// Runs the check on `context`. `elementCount` is deliberately not a multiple of 4 so the scalar tail runs too.
    /// - Throws: build, allocation, launch and copy errors (a wrong result is reported in the result, not thrown).
    public static func run(on context: CUDAContext, elementCount: Int = (1 << 22) + 3) throws -> KernelSelfCheckResult {
        let inputs = testValues(count: elementCount)
        let stream = context.defaultStream
        let input = try DeviceTensor(uploading: Tensor(inputs, shape: [elementCount]), context: context)
        let converted = try DeviceTensor(shape: [elementCount], dtype: .bf16, context: context)
        let roundTrip = try DeviceTensor(shape: [elementCount], dtype: .f32, context: context)
        // Poison the outputs so an element the kernels skip cannot pass by accident.
        try stream.fill(converted.buffer, with: 0x7B)
        try stream.fill(roundTrip.buffer, with: 0x7B)

        // The checked launch asks for the device's whole opt-in shared memory (the kernel uses none of it), so the
        // dynamic-shared-memory attribute and launch path are exercised too.
        let toBF16 = try context.kernels.kernel(kernelNames[0])
        let sharedBytes = context.device.maxSharedMemoryPerBlockOptin - (try toBF16.resources().staticSharedBytes)
        try toBF16.setMaxDynamicSharedMemory(sharedBytes)
        let (grid, block) = context.conversionLaunchShape(elementCount: elementCount)
        try toBF16.launch(grid: grid, block: block, sharedMemoryBytes: sharedBytes, stream: stream,
                          arguments: [input.argument, converted.argument, .int64(Int64(elementCount))])
        try context.convert(converted, into: roundTrip)
        let gpuBits = try converted.download().scalars(as: UInt16.self)
        let gpuFloats = try roundTrip.download().scalars(as: UInt32.self)

        let timingOutput = try DeviceTensor(shape: [elementCount], dtype: .bf16, context: context)
        let start = try context.makeEvent()
        let end = try context.makeEvent()
        try context.convert(input, into: timingOutput)  // warm-up
        try stream.record(start)
        try context.convert(input, into: timingOutput)
        try stream.record(end)
        try end.synchronize()
        let milliseconds = try end.milliseconds(since: start)

        var conversionMismatches = 0
        var roundTripMismatches = 0
        var firstMismatch: String?
        for index in 0..<elementCount {
            let expected = FloatFormats.bf16Bits(inputs[index])
            if !sameBF16(gpuBits[index], expected) {
                conversionMismatches += 1
                firstMismatch = firstMismatch ?? "f32→bf16 of \(hex(inputs[index].bitPattern)) at \(index): GPU \(hex(gpuBits[index])), CPU \(hex(expected))"
            }
            let expectedFloat = FloatFormats.float(bf16: gpuBits[index]).bitPattern
            if gpuFloats[index] != expectedFloat {
                roundTripMismatches += 1
                firstMismatch = firstMismatch ?? "bf16→f32 of \(hex(gpuBits[index])) at \(index): GPU \(hex(gpuFloats[index])), CPU \(hex(expectedFloat))"
            }
        }
        let resources = try kernelNames.map { name in
            let usage = try context.kernels.kernel(name).resources()
            return KernelResourceUsage(kernel: name, registers: usage.registers, localBytes: usage.localBytes)
        }
        return KernelSelfCheckResult(
            kernels: kernelNames, target: try context.kernels.target().description, elements: elementCount,
            conversionMismatches: conversionMismatches, roundTripMismatches: roundTripMismatches,
            firstMismatch: firstMismatch, conversionMilliseconds: milliseconds, builds: context.kernels.buildRecords,
            resources: resources, checkedLaunchSharedBytes: sharedBytes,
            passed: conversionMismatches == 0 && roundTripMismatches == 0)
    }

    private static let kernelNames = ["nunchaku_convert_f32_to_bf16", "nunchaku_convert_bf16_to_f32"]

    /// Special values first (zeros, infinities, NaN, subnormals, rounding ties), then alternately uniformly random
    /// bit patterns (every float class) and values of ordinary size, from a fixed seed.
    static func testValues(count: Int) -> [Float] {
        let specials: [UInt32] = [
            0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001,
            0x0000_0001, 0x807F_FFFF, 0x7F7F_FFFF, 0x7F7F_8000, 0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF, 0x3F80_8001,
        ]
        var generator = SplitMix64(seed: 0x6E75_6E63_6861_6B75)
        return (0..<count).map { index in
            if index < specials.count { return Float(bitPattern: specials[index]) }
            let random = generator.next()
            if index % 2 == 0 { return Float(bitPattern: UInt32(truncatingIfNeeded: random)) }
            return (Float(random >> 40) / Float(1 << 24) - 0.5) * 16
        }
    }

    private static func sameBF16(_ left: UInt16, _ right: UInt16) -> Bool {
        let isNaN = { (bits: UInt16) in bits & 0x7F80 == 0x7F80 && bits & 0x007F != 0 }
        return left == right || (isNaN(left) && isNaN(right))
    }

    private static func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
}
