import NunchakuCore
import Testing
@testable import SVDQuant

/// The kernel-exact W4A4 layer against the dense equivalent W_eff (an independent reference without activation
/// quantization), and against hand-built cases where every step is exact.
@Suite struct W4A4LayerTests {
    /// An a-priori bound on |layer − dense| per output, from the quantization steps of §3 (computed from the inputs
    /// only): activation rounding and quantization error times |dequantized weights|, the 16-bit accumulation of
    /// INT4 (one rounding per group), the 16-bit low-rank intermediate, and the epilogue/final roundings.
    static func noiseBound(_ weights: SVDQW4A4Weights, _ x: [Float], rows: Int, _ type: ActivationDType) -> [Double] {
        let n = weights.outFeatures, k = weights.inFeatures, g = weights.groupSize, groups = k / g
        let u = type == .bf16 ? 0x1p-8 : 0x1p-11
        let smooth = weights.canonical.smooth.floats().map(Double.init)
        let residual = weights.dequantizedResidual().map { Double($0).magnitude }
        let down = weights.canonical.projDown.floats().map(Double.init), up = weights.canonical.projUp.floats().map(Double.init)
        let bias = weights.canonical.bias?.floats().map(Double.init) ?? [Double](repeating: 0, count: n)
        let shift = weights.actUnsigned ? Double(ActivationQuantizer.unsignedShift) : 0
        let codeMax: Double = weights.precision == .nvfp4 ? 6 : (weights.actUnsigned ? 15 : 7)
        var bound = [Double](repeating: 0, count: rows * n)
        for m in 0..<rows {
            let row = x[(m * k)..<((m + 1) * k)].map(Double.init)
            let smoothed = (0..<k).map { (row[$0] + shift) / smooth[$0] }
            var budget = [Double](repeating: 0, count: k)  // per-input error of the dequantized activation
            for group in 0..<groups {
                let range = (group * g)..<((group + 1) * g)
                let scale = range.map { smoothed[$0].magnitude }.max()! * (1 + 4 * u) / codeMax
                for kk in range {
                    let rounding = 3 * u * (smoothed[kk].magnitude + shift)  // shift, division, stored-scale roundings
                    budget[kk] = weights.precision == .int4
                        ? scale / 2 + rounding + u * (smoothed[kk].magnitude + scale)
                        : scale + rounding + 0x1p-4 * (smoothed[kk].magnitude + scale) + 6 * 0x1p-10
                }
            }
            let lowRank = (0..<weights.rank).map { r in (0..<k).reduce(0.0) { $0 + row[$1] * down[$1 * weights.rank + r] } }
            for column in 0..<n {
                var quantization = 0.0, magnitude = 0.0
                for kk in 0..<k {
                    let w = residual[column * k + kk]
                    quantization += budget[kk] * w
                    magnitude += (smoothed[kk].magnitude + budget[kk]) * w
                }
                let accumulation = weights.precision == .int4 ? Double(groups + 3) * u * magnitude : (u + Double(groups) * 0x1p-23) * magnitude
                let loraMagnitude = (0..<weights.rank).reduce(0.0) { $0 + lowRank[$1].magnitude * up[column * weights.rank + $1].magnitude }
                let total = magnitude + bias[column].magnitude + loraMagnitude
                bound[m * n + column] = 1.05 * (quantization + accumulation + u * loraMagnitude + 3 * u * total) + 1e-6
            }
        }
        return bound
    }

    static let configurations: [(SVDQuantPrecision, ActivationDType, Bool, Bool)] = [
        (.int4, .bf16, false, false), (.int4, .f16, false, true), (.int4, .bf16, true, false), (.int4, .f16, true, false),
        (.nvfp4, .bf16, false, true), (.nvfp4, .f16, false, true), (.nvfp4, .bf16, false, false),
    ]

    @Test(arguments: configurations)
    func agreesWithDenseEquivalentWithinTheNoiseBound(configuration: (SVDQuantPrecision, ActivationDType, Bool, Bool)) throws {
        let (precision, type, unsigned, channelScales) = configuration
        var options = W4A4Fixtures.Options()
        options.precision = precision
        options.dtype = type
        options.actUnsigned = unsigned
        options.channelScales = channelScales
        options.wtscale = precision == .nvfp4 && channelScales ? 0.75 : nil
        options.rank = 32
        let rows = 6
        let weights = try W4A4Fixtures.weights(options, seed: 42)
        let x = W4A4Fixtures.activations(rows: rows, options, seed: 42)
        let layer = SVDQW4A4Linear(weights: weights)
        let y = try layer.forward(x)
        #expect(y.dtype == type.dtype && y.shape == [rows, options.n])
        let actual = y.floats(), dense = try weights.denseForward(x)
        let bound = Self.noiseBound(weights, x.floats(), rows: rows, type)
        var worst = 0.0, largestError = 0.0
        for index in actual.indices {
            let error = (Double(actual[index]) - Double(dense[index])).magnitude
            worst = max(worst, error / bound[index])
            largestError = max(largestError, error)
        }
        #expect(worst <= 1, "error reaches \(worst) × the bound")
        // The check has teeth: quantization changes the result, but only by noise. The worst-case bound adds the
        // K errors coherently; their root-sum-square (uniform rounding errors) predicts the typical error, and a
        // wrong scale, sign, shift or missing term would give errors of the order of the output itself.
        let errors = actual.indices.map { Double(actual[$0]) - Double(dense[$0]) }
        let rmsError = (errors.reduce(0) { $0 + $1 * $1 } / Double(errors.count)).squareRoot()
        let rmsOutput = (dense.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(dense.count)).squareRoot()
        #expect(largestError > 0)
        #expect(rmsError < 0.15 * rmsOutput, "rms error \(rmsError) vs rms output \(rmsOutput)")
        // The steps compose to the forward pass.
        #expect(try layer.multiply(layer.quantize(x)).floats() == actual)
    }

    /// A fake-quantization reference (deepcompressor-style simulation, the quantizer restated here from the spec):
    /// activations smoothed and rounded to the 16-bit type, quantized per group with the fp32 scale, dequantized
    /// with the stored scale, multiplied by the dequantized weights exactly in Double. The layer may differ only
    /// by its 16-bit accumulation (INT4), its roundings of psum and scale products, and the output roundings.
    @Test(arguments: configurations)
    func matchesFakeQuantizationReference(configuration: (SVDQuantPrecision, ActivationDType, Bool, Bool)) throws {
        let (precision, type, unsigned, channelScales) = configuration
        var options = W4A4Fixtures.Options()
        options.precision = precision
        options.dtype = type
        options.actUnsigned = unsigned
        options.channelScales = channelScales
        options.wtscale = precision == .nvfp4 && channelScales ? 0.75 : nil
        let rows = 4
        let weights = try W4A4Fixtures.weights(options, seed: 77)
        let xTensor = W4A4Fixtures.activations(rows: rows, options, seed: 77)
        let y = try SVDQW4A4Linear(weights: weights).forward(xTensor).floats()
        let x = xTensor.floats()
        let (n, k, g, r) = (weights.outFeatures, weights.inFeatures, weights.groupSize, weights.rank)
        let u = type == .bf16 ? 0x1p-8 : 0x1p-11
        let smooth = weights.canonical.smooth.floats(), residual = weights.dequantizedResidual()
        let down = weights.canonical.projDown.floats(), up = weights.canonical.projUp.floats()
        let bias = weights.canonical.bias?.floats() ?? [Float](repeating: 0, count: n)
        for m in 0..<rows {
            var dequantized = [Double](repeating: 0, count: k)
            for group in 0..<(k / g) {
                let range = (group * g)..<((group + 1) * g)
                let t = range.map { kk -> Float in
                    let shifted = unsigned ? type.round(x[m * k + kk] + 0.171875) : x[m * k + kk]
                    return type.round(shifted / smooth[kk])
                }
                // Scales as the kernel specifies them: fp32 amax · fp32(1/qmax), codes from t · fp32(1/scale).
                let amax = t.map(\.magnitude).max()!
                for (offset, value) in t.enumerated() {
                    if precision == .int4 {
                        let scale = amax * (1 / Float(unsigned ? 15 : 7))
                        let scaled = Double(value * (1 / scale))
                        let code = scale == 0 ? 0 : min(max(scaled.rounded(.toNearestOrEven), unsigned ? 0 : -8), unsigned ? 15 : 7)
                        dequantized[range.lowerBound + offset] = code * Double(type.round(scale))
                    } else {
                        let scale = min(amax * (1 / Float(6)), 448)
                        let code = scale == 0 ? 0 : Double(FloatFormats.float(e2m1: FloatFormats.e2m1Code(value * (1 / scale))))
                        dequantized[range.lowerBound + offset] = code * Double(FloatFormats.float(e4m3fn: FloatFormats.e4m3fnBits(scale, saturating: true)))
                    }
                }
            }
            let lowRank = (0..<r).map { rr in
                Double(type.round(Float((0..<k).reduce(0.0) { $0 + Double(x[m * k + $1]) * Double(down[$1 * r + rr]) })))
            }
            for column in 0..<n {
                var main = 0.0, magnitude = 0.0
                for kk in 0..<k {
                    let term = dequantized[kk] * Double(residual[column * k + kk])
                    main += term
                    magnitude += term.magnitude
                }
                let loraTerms = (0..<r).map { lowRank[$0] * Double(up[column * r + $0]) }
                let expected = main + Double(bias[column]) + loraTerms.reduce(0, +)
                let total = magnitude + Double(bias[column].magnitude) + loraTerms.reduce(0) { $0 + $1.magnitude }
                let accumulation = precision == .int4 ? Double(k / g + 3) * u * magnitude : (u + Double(k / g) * 0x1p-23) * magnitude
                let tolerance = 1.05 * (accumulation + 3 * u * total + 2 * u * loraTerms.reduce(0) { $0 + $1.magnitude }) + 1e-6
                #expect((Double(y[m * n + column]) - expected).magnitude <= tolerance, "row \(m) column \(column)")
            }
        }
    }

    /// INT4, f16: activations on the quantization grid, power-of-two scales and small integers, so every rounding
    /// of the kernel is exact and the output must equal the exact sum.
    @Test(arguments: [false, true])
    func int4ExactGridCase(unsigned: Bool) throws {
        var rng = SeededGenerator(seed: 5)
        let (n, k, r, type) = (128, 128, 16, ActivationDType.f16)
        let weightCodes = (0..<(n * k)).map { _ in Int.random(in: -2...2, using: &rng) }
        let activationCodes = (0..<(2 * k)).map { index in
            index % 64 == 0 ? (unsigned ? 15 : 7) : Int.random(in: unsigned ? 0...15 : -7...7, using: &rng)
        }
        let shift: Float = unsigned ? 0.171875 : 0
        // x/2 = code/4 (smooth 2, activation scale 1/4); unsigned inputs are shifted back by 0.171875.
        let x = activationCodes.map { Float($0) / 2 - shift }
        // One ±1/8 entry per rank column: the low-rank activations stay exact in f16.
        var down = [Float](repeating: 0, count: k * r)
        for rr in 0..<r { down[Int.random(in: 0..<k, using: &rng) * r + rr] = Bool.random(using: &rng) ? 0.125 : -0.125 }
        let up = (0..<(n * r)).map { _ in Float(Int.random(in: -2...2, using: &rng)) / 4 }
        let bias = (0..<n).map { _ in Float(Int.random(in: -64...64, using: &rng)) / 64 }
        let tensors = SVDQW4A4Tensors(
            qweight: bytesTensor(ReshapePermuteReference.pairs(weightCodes.map { UInt8(bitPattern: Int8($0)) & 0xF }), [n, k / 2], .u8),
            wscales: halfTensor([Float](repeating: 0.0625, count: 2 * n), [2, n], type), bias: halfTensor(bias, [n], type),
            smooth: halfTensor([Float](repeating: 2, count: k), [k], type), projDown: halfTensor(down, [k, r], type),
            projUp: halfTensor(up, [n, r], type))
        let weights = try SVDQW4A4Weights(name: "exact", tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: unsigned)
        let y = try SVDQW4A4Linear(weights: weights).forward(halfTensor(x, [2, k], type)).floats()
        for m in 0..<2 {
            let lowRank = (0..<r).map { rr in (0..<k).reduce(0.0) { $0 + Double(x[m * k + $1]) * Double(down[$1 * r + rr]) } }
            #expect(lowRank.allSatisfy { Double(type.round(Float($0))) == $0 }, "test values: low-rank activations exact in f16")
            for column in 0..<n {
                // The 4-bit part and the bias are exact in f16; the low-rank branch adds in fp32 (exactly here) and
                // the total is rounded once.
                var main = Double(bias[column])
                for kk in 0..<k { main += Double(activationCodes[m * k + kk] * weightCodes[column * k + kk]) / 64 }
                #expect(Double(type.round(Float(main))) == main, "test values: 4-bit part exact in f16")
                let total = (0..<r).reduce(main) { $0 + lowRank[$1] * Double(up[column * r + $1]) }
                #expect(Double(y[m * n + column]) == Double(type.round(Float(total))), "row \(m) column \(column)")
            }
        }
    }

    /// NVFP4, bf16: E2M1 activations with scale 1/8, micro-scales 1/4, wtscale 1/2, power-of-two wcscales.
    @Test func nvfp4ExactGridCase() throws {
        var rng = SeededGenerator(seed: 9)
        let (n, k, type) = (128, 128, ActivationDType.bf16)
        let e2m1: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]
        let weightCodes = (0..<(n * k)).map { _ in UInt8.random(in: 0...15, using: &rng) }
        let activationCodes = (0..<k).map { $0 % 16 == 0 ? UInt8(7) : UInt8.random(in: 0...15, using: &rng) }
        let x = activationCodes.map { e2m1[Int($0)] / 8 }
        let channelScales = (0..<n).map { _ in Float([0.5, 1, 2].randomElement(using: &rng)!) }
        let tensors = SVDQW4A4Tensors(
            qweight: bytesTensor(ReshapePermuteReference.pairs(weightCodes), [n, k / 2], .u8),
            wscales: bytesTensor([UInt8](repeating: FloatFormats.e4m3fnBits(0.25), count: k / 16 * n), [k / 16, n], .f8e4m3fn),
            wtscale: Tensor([0.5], shape: [1], dtype: .f32), wcscales: halfTensor(channelScales, [n], type), bias: nil,
            smooth: halfTensor([Float](repeating: 1, count: k), [k], type),
            projDown: Tensor(zeros: [k, 0], dtype: .bf16), projUp: Tensor(zeros: [n, 0], dtype: .bf16))
        let weights = try SVDQW4A4Weights(name: "exact", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        #expect(weights.rank == 0 && weights.wtscale == 0.5)
        let y = try SVDQW4A4Linear(weights: weights).forward(halfTensor(x, [1, k], type)).floats()
        for column in 0..<n {
            let dot = (0..<k).reduce(0.0) { $0 + Double(e2m1[Int(activationCodes[$1])]) * Double(e2m1[Int(weightCodes[column * k + $1])]) }
            let expected = Double(type.round(Float(dot / 8 * 0.25 * 0.5))) * Double(channelScales[column])
            #expect(Double(y[column]) == expected, "column \(column)")
        }
        #expect(try weights.denseForward(halfTensor(x, [1, k], type)).enumerated().allSatisfy { Double($1) == Double(y[$0]) || abs($1 - y[$0]) <= 0.01 * abs(y[$0]) + 1e-3 })
    }

    @Test func f16OutputsClampAt65504AndNaNBecomes65504() {
        #expect(SVDQW4A4Linear.store(1e6, .f16) == 65504)
        #expect(SVDQW4A4Linear.store(-.infinity, .f16) == -65504)
        #expect(SVDQW4A4Linear.store(.nan, .f16) == 65504)
        #expect(SVDQW4A4Linear.store(1e6, .bf16) == ActivationDType.bf16.round(Float(1e6)))
    }

    @Test func runsInTheOtherActivationType() throws {
        var options = W4A4Fixtures.Options()
        options.dtype = .bf16
        let weights = try W4A4Fixtures.weights(options, seed: 8)
        options.dtype = .f16
        let x = W4A4Fixtures.activations(rows: 3, options, seed: 8)
        let y = try SVDQW4A4Linear(weights: weights).forward(x)
        #expect(y.dtype == .f16)
        let dense = try weights.denseForward(x), actual = y.floats()
        let bound = Self.noiseBound(weights, x.floats(), rows: 3, .f16)
        // bf16 weights are exact in f16 here (moderate values), so the f16 bound applies.
        #expect(actual.indices.allSatisfy { abs(Double(actual[$0]) - Double(dense[$0])) <= bound[$0] })
    }

    @Test func stepsRejectMismatchedInputs() throws {
        let weights = try W4A4Fixtures.weights(W4A4Fixtures.Options(), seed: 1)
        let layer = SVDQW4A4Linear(weights: weights)
        #expect(mentions(thrownError { _ = try layer.forward(Tensor(zeros: [2, 256], dtype: .f32)) }, "layer input", "f32"))
        #expect(mentions(thrownError { _ = try layer.forward(Tensor(zeros: [2, 128], dtype: .bf16)) }, "layer input", "[2, 128]"))
        var other = W4A4Fixtures.Options()
        other.precision = .nvfp4
        let foreign = try SVDQW4A4Linear(weights: W4A4Fixtures.weights(other, seed: 1)).quantize(Tensor(zeros: [1, 256], dtype: .bf16))
        #expect(mentions(thrownError { _ = try layer.multiply(foreign) }, "layer", "do not match"))
        #expect(mentions(thrownError {
            _ = try QuantizedActivations(precision: .int4, activationDType: .bf16, unsigned: false,
                                         codes: Tensor(zeros: [2, 128], dtype: .u8), scales: Tensor(zeros: [2, 4], dtype: .f16),
                                         lowRank: Tensor(zeros: [2, 16], dtype: .f32))
        }, "quantized activation scales", "f16"))
    }
}
