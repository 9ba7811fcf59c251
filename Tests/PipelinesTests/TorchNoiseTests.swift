import NunchakuCore
import SafeTensors
import Testing
@testable import Pipelines

/// `torch.randn` on a seeded CPU generator, bitwise, for both PyTorch CPU kernels
/// (fixture: scripts/parity/pipeline_noise_fixtures.py).
struct TorchNoiseTests {
    static let dtypes: [String: DType] = ["float32": .f32, "float64": .f64, "bfloat16": .bf16, "float16": .f16]

    /// The IEEE bits of `value` in `dtype`.
    static func bits(_ value: Double, _ dtype: DType) -> UInt64 {
        switch dtype {
        case .f64: value.bitPattern
        case .bf16: UInt64(FloatFormats.bf16Bits(Float(value)))
        case .f16: UInt64(FloatFormats.f16Bits(Float(value)))
        default: UInt64(Float(value).bitPattern)
        }
    }

    static func fnv(_ values: [UInt64]) -> UInt64 {
        values.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ $1) &* 0x100_0000_01B3 }
    }

    @Test(arguments: TorchNormalKernel.allCases)
    func randnMatchesTorchBitwise(kernel: TorchNormalKernel) throws {
        let fixture = try #require(try FixtureFiles.json("noise.json")[kernel.rawValue])
        let cases = try #require(fixture["cases"]?.arrayElements)
        #expect(cases.count == 17)
        for case_ in cases {
            let seed = try #require(case_["seed"]?.intValue)
            let shape = try #require(case_["shape"]?.intArray)
            let dtype = try #require(Self.dtypes[case_["dtype"]?.stringValue ?? ""])
            var generator = TorchCPUGenerator(seed: UInt64(seed))
            let values = try generator.normal(count: shape.reduce(1, *), dtype: dtype, kernel: kernel)
            let bits = values.map { Self.bits($0, dtype) }
            let label = "\(kernel) seed \(seed) \(shape) \(dtype)"
            #expect(bits.prefix(8).map(String.init) == case_["head"]?.arrayElements?.compactMap(\.stringValue), "\(label)")
            #expect(bits.suffix(8).map(String.init) == case_["tail"]?.arrayElements?.compactMap(\.stringValue), "\(label)")
            #expect(String(Self.fnv(bits)) == case_["fnv"]?.stringValue, "\(label)")
        }
    }

    /// Hashes recorded on an AVX-512 Xeon with PyTorch 2.11: the AVX2 kernel, and the older bf16/f16 algorithm.
    @Test func matchesPyTorch211OnAVX512() throws {
        let cases = try #require(try FixtureFiles.json("noise-torch-2.11-avx512.json")["cases"]?.arrayElements)
        #expect(cases.count == 8)
        for case_ in cases {
            let seed = try #require(case_["seed"]?.intValue)
            let shape = try #require(case_["shape"]?.intArray)
            let dtype = try #require(Self.dtypes[case_["dtype"]?.stringValue ?? ""])
            var generator = TorchCPUGenerator(seed: UInt64(seed))
            let values = try generator.normal(count: shape.reduce(1, *), dtype: dtype, kernel: .avx2,
                                              reducedPrecision: .roundedEachOperation)
            #expect(String(Self.fnv(values.map { Self.bits($0, dtype) })) == case_["fnv"]?.stringValue,
                    "seed \(seed) \(shape) \(dtype)")
        }
    }

    @Test(arguments: TorchNormalKernel.allCases)
    func reusedGeneratorContinuesTheStream(kernel: TorchNormalKernel) throws {
        let fixture = try #require(try FixtureFiles.json("noise.json")[kernel.rawValue])
        for sequence in try #require(fixture["sequences"]?.arrayElements) {
            var generator = TorchCPUGenerator(seed: UInt64(try #require(sequence["seed"]?.intValue)))
            let counts = try #require(sequence["counts"]?.intArray)
            let expected = try #require(sequence["values"]?.arrayElements)
            for (count, values) in zip(counts, expected) {
                let bits = try generator.normal(count: count, kernel: kernel).map { Int(Self.bits($0, .f32)) }
                #expect(bits == values.intArray, "\(kernel) \(counts)")
            }
        }
    }

    @Test func randnTensor() throws {
        var generator = TorchCPUGenerator(seed: 0)
        let latents = try generator.randn(shape: [1, 16, 4, 4], dtype: .bf16)
        #expect(latents.shape == [1, 16, 4, 4])
        #expect(latents.dtype == .bf16)
        var again = TorchCPUGenerator(seed: 0)
        let values = try again.normal(count: 256, dtype: .bf16).map { Float($0) }
        #expect(latents.floats() == values)
        #expect(throws: NunchakuError.self) { _ = try generator.randn(shape: [4], dtype: .i32) }
        #expect(throws: NunchakuError.self) { _ = try generator.randn(shape: [-1, 4]) }
    }
}
