import NunchakuCore
import Testing
@testable import SVDQuant

@Suite struct AWQW4A16Tests {
    static func packed(n: Int, k: Int, seed: UInt64) -> AWQW4A16Tensors {
        var rng = SeededGenerator(seed: seed)
        return AWQW4A16Tensors(
            qweight: bytesTensor(randomBytes(n * k / 2, &rng), [n / 4, k / 2], .i32),
            wscales: halfTensor(randomValues(k / 64 * n, in: 0.001...0.02, .bf16, &rng), [k / 64, n], .bf16),
            wzeros: halfTensor(randomValues(k / 64 * n, in: -0.15...0, .bf16, &rng), [k / 64, n], .bf16),
            bias: halfTensor(randomValues(n, in: -1...1, .bf16, &rng), [n], .bf16))
    }

    @Test(arguments: [nil, 3, 6])
    func modulationLayersRoundTripAndDeinterleave(chunks: Int?) throws {
        let (n, k) = (48, 192)
        let packed = Self.packed(n: n, k: k, seed: UInt64(chunks ?? 0))
        let modulation = try chunks.map { try ModulationInterleave(chunks: $0) }
        let weights = try AWQW4A16Weights(name: "norm1.linear", tensors: packed, layout: .nunchaku, modulation: modulation)
        #expect(weights.outFeatures == n && weights.inFeatures == k)
        let repacked = try weights.tensors(layout: .nunchaku)
        for (a, b) in [(repacked.qweight, packed.qweight), (repacked.wscales, packed.wscales), (repacked.wzeros, packed.wzeros), (repacked.bias!, packed.bias!)] {
            #expect(a.shape == b.shape && TensorValues.bytes(a) == TensorValues.bytes(b))
        }
        // Natural order: deepcompressor's interleave of the canonical tensors gives back the packed ones.
        let unpackedRows = TensorValues.bytes(try NunchakuAWQLayout.unpackWeight(packed.qweight))
        let canonicalRows = TensorValues.bytes(weights.canonical.qweight)
        let bias = weights.canonical.bias!.floats(), packedBias = packed.bias!.floats()
        if let chunks {
            #expect(ReshapePermuteReference.interleave(canonicalRows, chunks: chunks, n: n) == unpackedRows)
            #expect(ReshapePermuteReference.interleave(bias, chunks: chunks, n: n) == packedBias)
            let scales = ReshapePermuteReference.transposed(weights.canonical.wscales.floats(), rows: k / 64, columns: n)
            let packedScales = ReshapePermuteReference.transposed(packed.wscales.floats(), rows: k / 64, columns: n)
            #expect(ReshapePermuteReference.interleave(scales, chunks: chunks, n: n) == packedScales)
            #expect(weights.foldedScaleChunks == (chunks == 6 ? [1, 4] : [1]))
        } else {
            #expect(canonicalRows == unpackedRows && bias == packedBias && weights.foldedScaleChunks.isEmpty)
        }
    }

    /// Dequantize, multiply and sum in Double: the layer may differ by its 16-bit roundings only.
    @Test(arguments: ActivationDType.allCases)
    func forwardMatchesExactArithmeticWithinRounding(type: ActivationDType) throws {
        let (n, k, rows) = (32, 256, 3)
        let weights = try AWQW4A16Weights(name: "adaln", tensors: Self.packed(n: n, k: k, seed: 4), layout: .nunchaku)
        var rng = SeededGenerator(seed: 6)
        let x = randomValues(rows * k, in: -2...2, type, &rng)
        let y = try AWQW4A16Linear(weights: weights).forward(halfTensor(x, [rows, k], type)).floats()
        let codes = W4A4GEMM.decode(weights.canonical.qweight, count: n * k, table: W4A4GEMM.table(.int4, signed: false))
        let scales = weights.canonical.wscales.floats(), zeros = weights.canonical.wzeros.floats(), bias = weights.canonical.bias!.floats()
        let u = type == .bf16 ? 0x1p-8 : 0x1p-11
        for m in 0..<rows {
            for column in 0..<n {
                var sum = 0.0, magnitude = 0.0
                for kk in 0..<k {
                    let w = Double(codes[column * k + kk]) * Double(scales[(kk / 64) * n + column]) + Double(zeros[(kk / 64) * n + column])
                    sum += w * Double(x[m * k + kk])
                    magnitude += (w * Double(x[m * k + kk])).magnitude
                }
                let expected = sum + Double(bias[column])
                let tolerance = 2.02 * u * magnitude + 2 * u * (expected.magnitude + Double(bias[column].magnitude)) + 1e-6
                #expect((Double(y[m * n + column]) - expected).magnitude <= tolerance, "row \(m) column \(column)")
            }
        }
    }

    @Test func exactCase() throws {
        // w = q/8 − 7/8, x = ±1/4 multiples: every product, sum and output is exact in bf16.
        let (n, k) = (4, 64)
        var rng = SeededGenerator(seed: 12)
        let codes = (0..<(n * k)).map { _ in UInt8.random(in: 0...15, using: &rng) }
        let tensors = AWQW4A16Tensors(
            qweight: bytesTensor(ReshapePermuteReference.pairs(codes), [n, k / 2], .u8),
            wscales: halfTensor([Float](repeating: 0.125, count: n), [1, n], .bf16),
            wzeros: halfTensor([Float](repeating: -0.875, count: n), [1, n], .bf16),
            bias: halfTensor([0.5, -0.25, 1, 0], [n], .bf16))
        let layer = AWQW4A16Linear(weights: try AWQW4A16Weights(name: "adaln", tensors: tensors, layout: .canonical))
        let x = (0..<k).map { _ in Float(Int.random(in: -4...4, using: &rng)) / 4 }
        let y = try layer.forward(halfTensor(x, [1, k], .bf16)).floats()
        for column in 0..<n {
            let expected = (0..<k).reduce(Double([0.5, -0.25, 1, 0][column])) { $0 + (Double(codes[column * k + $1]) - 7) / 8 * Double(x[$1]) }
            #expect(Double(y[column]) == expected)
        }
    }

    @Test func badTensorsAreRejectedByName() throws {
        let good = Self.packed(n: 48, k: 128, seed: 1)
        func error(_ modulation: ModulationInterleave? = nil, _ edit: (inout AWQW4A16Tensors) -> Void) -> NunchakuError? {
            var tensors = good
            edit(&tensors)
            return thrownError { _ = try AWQW4A16Weights(name: "adaln", tensors: tensors, layout: .nunchaku, modulation: modulation) }
        }
        #expect(error { _ in } == nil)
        #expect(mentions(error { $0.qweight = Tensor(zeros: [12, 48], dtype: .i32) }, "adaln.qweight", "K = 96"))
        #expect(mentions(error(try ModulationInterleave(chunks: 5)) { _ in }, "adaln", "5 modulation chunks"))
        #expect(mentions(error { $0.wzeros = $0.wzeros.converted(to: .f16) }, "adaln.wzeros", "f16"))
        #expect(mentions(error { $0.wscales = Tensor(zeros: [2, 47], dtype: .bf16) }, "adaln.wscales", "[2, 48]"))
        #expect(mentions(error { $0.bias = halfTensor([.nan] + [Float](repeating: 0, count: 47), [48], .bf16) }, "adaln.bias", "element 0"))
        #expect(mentions(thrownError { _ = try ModulationInterleave(chunks: 1) }, "at least 2"))
        let layer = AWQW4A16Linear(weights: try AWQW4A16Weights(name: "adaln", tensors: good, layout: .nunchaku))
        #expect(mentions(thrownError { _ = try layer.forward(Tensor(zeros: [1, 128], dtype: .f32)) }, "adaln input", "f32"))
        #expect(try layer.forward(Tensor(zeros: [2, 1, 128], dtype: .f16)).shape == [2, 1, 48])
    }
}

@Suite struct DenseLinearTests {
    @Test(arguments: [DType.bf16, .f16, .f32])
    func roundsTheFP32ResultOnce(dtype: DType) throws {
        let (n, k) = (24, 96)
        var rng = SeededGenerator(seed: 2)
        let weightValues = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let biasValues = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        let weight = Tensor(weightValues, shape: [n, k], dtype: .bf16), bias = Tensor(biasValues, shape: [n], dtype: .f32)
        let layer = try Linear(name: "proj_out", weight: weight, bias: bias)
        let x = Tensor((0..<(2 * 3 * k)).map { _ in Float.random(in: -1...1, using: &rng) }, shape: [2, 3, k], dtype: dtype)
        let y = try layer.forward(x)
        #expect(y.shape == [2, 3, n] && y.dtype == dtype)
        let w = weight.floats(), xs = x.floats(), actual = y.floats()
        for row in 0..<6 {
            for column in 0..<n {
                let exact = (0..<k).reduce(Double(biasValues[column])) { $0 + Double(xs[row * k + $1]) * Double(w[column * k + $1]) }
                let magnitude = (0..<k).reduce(0.0) { $0 + (Double(xs[row * k + $1]) * Double(w[column * k + $1])).magnitude }
                let value = Double(actual[row * n + column])
                switch ActivationDType(dtype) {
                case let type?:
                    // Rounded once from an fp32 sum: within half an ulp of the exact value plus the fp32 error.
                    let ulp = Double(type.value(type.bits(Float(value).magnitude) + 1) - Float(value).magnitude)
                    #expect((value - exact).magnitude <= ulp / 2 + Double(k) * 0x1p-24 * magnitude)
                case nil:
                    #expect((value - exact).magnitude <= Double(k) * 0x1p-24 * magnitude + 1e-7)
                }
            }
        }
    }

    @Test func badInputsAreRejectedByName() throws {
        #expect(mentions(thrownError { _ = try Linear(name: "x_embedder", weight: Tensor([1, .infinity], shape: [1, 2]), bias: nil) }, "x_embedder.weight", "element 1"))
        #expect(mentions(thrownError { _ = try Linear(name: "x_embedder", weight: Tensor(zeros: [2, 2], dtype: .f8e4m3fn), bias: nil) }, "x_embedder.weight", "f8e4m3fn"))
        #expect(mentions(thrownError { _ = try Linear(name: "x_embedder", weight: Tensor(zeros: [2, 2], dtype: .f32), bias: Tensor(zeros: [3], dtype: .f32)) }, "x_embedder.bias", "[2]"))
        let layer = try Linear(name: "x_embedder", weight: Tensor(zeros: [2, 2], dtype: .f32), bias: nil)
        #expect(mentions(thrownError { _ = try layer.forward(Tensor(zeros: [1, 3], dtype: .f32)) }, "x_embedder input", "[1, 3]"))
    }
}
