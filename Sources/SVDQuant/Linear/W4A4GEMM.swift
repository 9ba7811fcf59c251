import CPUBackend
import NunchakuCore

/// The 4-bit group-scaled products of a W4A4 layer plus its bias epilogue, emulating Nunchaku's GEMM kernels
/// (research/nunchaku-internals.md §3.4–3.5).
///
/// INT4, per output (m, n), groups g of 64 in order from acc = 0:
/// `acc = hfma(half(psum_g), hmul(ascale[m][g], wscale[g][n]), acc)` with `psum_g` the exact integer dot product;
/// the running sum is kept in the 16-bit type. NVFP4: `Σ_g dot_g · ascale · wscale` accumulated in fp32 (each
/// 64-wide chunk's four scaled groups added exactly, then rounded into the fp32 accumulator; the tensor core's
/// internal order is not documented), times `wtscale` when it is not 1, then rounded to the 16-bit type.
/// Epilogue: `hfma(y, wcscales, bias)`, `hmul(y, wcscales)`, `hadd(y, bias)` or nothing, by what the layer has.
enum W4A4GEMM {
    struct Operands {
        let precision: SVDQuantPrecision
        let type: ActivationDType
        let rows: Int, outFeatures: Int, inFeatures: Int
        let unsignedActivations: Bool
        /// u8 [M, K/2] activation codes.
        let activationCodes: Tensor
        /// [M, K/G] activation scale values.
        let activationScales: [Float]
        /// u8 [N, K/2] weight codes.
        let weightCodes: Tensor
        /// [N, K/G] weight scale values (transposed from the canonical [K/G, N]).
        let weightScales: [Float]
        let wtscale: Float
        let wcscales: [Float]?
        let bias: [Float]?
    }

    /// Output rows per job, and output channels whose weight codes one job decodes.
    private static let rowsPerJob = 32, channelsPerJob = 16

    /// [M, N] values of `type`: the main product after the bias epilogue (before the low-rank branch).
    static func multiply(_ operands: Operands) -> [Float] {
        let m = operands.rows, n = operands.outFeatures, k = operands.inFeatures
        let groups = k / operands.precision.groupSize
        let activations = decode(operands.activationCodes, count: m * k, table: table(operands.precision, signed: !operands.unsignedActivations))
        let weightTable = table(operands.precision, signed: true)
        var output = [Float](repeating: 0, count: m * n)
        let rowJobs = (m + rowsPerJob - 1) / rowsPerJob, channelJobs = (n + channelsPerJob - 1) / channelsPerJob
        operands.weightCodes.withUnsafeBytes { weightBytes in
            activations.withUnsafeBufferPointer { activations in
                output.withUnsafeMutableBufferPointer { output in
                    parallelFor(rowJobs * channelJobs) { job in
                        let firstRow = (job / channelJobs) * rowsPerJob, firstChannel = (job % channelJobs) * channelsPerJob
                        let channels = firstChannel..<min(n, firstChannel + channelsPerJob)
                        var weights = [Int16](repeating: 0, count: channels.count * k)
                        weights.withUnsafeMutableBufferPointer { weights in
                            for (slot, channel) in channels.enumerated() {
                                for byte in 0..<(k / 2) {
                                    let packed = weightBytes[channel * k / 2 + byte]
                                    weights[slot * k + 2 * byte] = weightTable[Int(packed & 0xF)]
                                    weights[slot * k + 2 * byte + 1] = weightTable[Int(packed >> 4)]
                                }
                            }
                            for row in firstRow..<min(m, firstRow + rowsPerJob) {
                                for (slot, channel) in channels.enumerated() {
                                    let a = activations.baseAddress! + row * k, w = weights.baseAddress! + slot * k
                                    let y = operands.precision == .int4
                                        ? int4Dot(a, w, row: row, channel: channel, groups: groups, operands)
                                        : nvfp4Dot(a, w, row: row, channel: channel, groups: groups, operands)
                                    output[row * n + channel] = epilogue(y, channel: channel, operands)
                                }
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    @inline(__always)
    private static func int4Dot(
        _ a: UnsafePointer<Int16>, _ w: UnsafePointer<Int16>, row: Int, channel: Int, groups: Int, _ operands: Operands
    ) -> Float {
        let type = operands.type
        var accumulator: Float = 0
        for group in 0..<groups {
            let offset = group * 64
            let products = load32(a + offset) &* load32(w + offset) &+ load32(a + offset + 32) &* load32(w + offset + 32)
            let psum = Float(products.wrappedSum())  // |psum| ≤ 64·15·8 fits Int16
            let scale = type.round(operands.activationScales[row * groups + group] * operands.weightScales[channel * groups + group])
            accumulator = type.fusedMultiplyAdd(type.round(psum), scale, accumulator)
        }
        return accumulator
    }

    @inline(__always)
    private static func nvfp4Dot(
        _ a: UnsafePointer<Int16>, _ w: UnsafePointer<Int16>, row: Int, channel: Int, groups: Int, _ operands: Operands
    ) -> Float {
        var accumulator: Float = 0
        for chunk in 0..<(groups / 4) {
            var chunkSum = 0.0
            for group in (4 * chunk)..<(4 * chunk + 4) {
                // Codes are decoded as twice their E2M1 value, so a product counts quarters (|Σ| ≤ 16·144).
                let quarters = (load16(a + 16 * group) &* load16(w + 16 * group)).wrappedSum()
                chunkSum += Double(quarters) * 0.25 * Double(operands.activationScales[row * groups + group])
                    * Double(operands.weightScales[channel * groups + group])
            }
            accumulator = Float(Double(accumulator) + chunkSum)
        }
        if operands.wtscale != 1 { accumulator *= operands.wtscale }
        return operands.type.round(accumulator)
    }

    /// `EpilogueBias<USE_BIAS, USE_SCALE>`.
    @inline(__always)
    private static func epilogue(_ y: Float, channel: Int, _ operands: Operands) -> Float {
        let type = operands.type
        switch (operands.wcscales, operands.bias) {
        case let (scales?, bias?): return type.fusedMultiplyAdd(y, scales[channel], bias[channel])
        case let (scales?, nil): return type.round(y * scales[channel])
        case let (nil, bias?): return type.round(y + bias[channel])
        case (nil, nil): return y
        }
    }

    // MARK: Codes

    /// Integer values of the 16 nibble codes: INT4 signed (−8…7) or unsigned (0…15); NVFP4 twice the E2M1 value.
    static func table(_ precision: SVDQuantPrecision, signed: Bool) -> [Int16] {
        (0..<16).map { code in
            switch precision {
            case .int4: signed ? Int16(Int8(bitPattern: UInt8(code) << 4) >> 4) : Int16(code)
            case .nvfp4: Int16(2 * FloatFormats.float(e2m1: UInt8(code)))
            }
        }
    }

    /// The `count` codes of a u8 nibble tensor (low nibble first) as integers.
    static func decode(_ codes: Tensor, count: Int, table: [Int16]) -> [Int16] {
        codes.withUnsafeBytes { bytes in
            [Int16](unsafeUninitializedCapacity: count) { buffer, initialized in
                for index in 0..<(count / 2) {
                    buffer[2 * index] = table[Int(bytes[index] & 0xF)]
                    buffer[2 * index + 1] = table[Int(bytes[index] >> 4)]
                }
                initialized = count
            }
        }
    }

    @inline(__always)
    private static func load32(_ pointer: UnsafePointer<Int16>) -> SIMD32<Int16> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD32<Int16>.self)
    }

    @inline(__always)
    private static func load16(_ pointer: UnsafePointer<Int16>) -> SIMD16<Int16> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD16<Int16>.self)
    }
}
