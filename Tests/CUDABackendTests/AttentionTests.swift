@testable import CUDABackend
import NunchakuCore
import Testing

@Suite struct AttentionTests {
    static func geometry(query: [Int], key: [Int], value: [Int]? = nil, dtype: DType = .bf16, keyDType: DType? = nil,
                         mask: ([Int], DType)? = nil, output: [Int]? = nil) throws -> AttentionGeometry {
        try AttentionGeometry(query: query, key: key, value: value ?? key, dtypes: (dtype, keyDType ?? dtype, dtype),
                              keyMask: mask.map { ($0.0, $0.1) }, output: (output ?? query, dtype))
    }

    @Test func fluxShapeLaunchGeometry() throws {
        let flux = try Self.geometry(query: [1, 4608, 24, 128], key: [1, 4608, 24, 128])
        #expect(flux.kernelName == "nunchaku_attention_bf16_d128")
        #expect(flux.grid == CUDADim3(72, 24, 1))
        #expect(flux.sharedMemoryBytes == 69_632)
        #expect(abs(Double(flux.scaleLog2) - 1.4426950408889634 / 128.0.squareRoot()) < 1e-7)
        let expectedFlops: Double = 4 * 24 * 4608 * 4608 * 128
        #expect(flux.flops == expectedFlops)
        let ragged = try Self.geometry(query: [2, 100, 2, 64], key: [2, 257, 2, 64], dtype: .f16, mask: ([2, 257], .u8))
        #expect(ragged.kernelName == "nunchaku_attention_f16_d64")
        #expect(ragged.grid == CUDADim3(2, 2, 2))
        #expect(ragged.sharedMemoryBytes == 36_864)
    }

    @Test func unsupportedHeadDimensionsAreRefusedByName() {
        do {
            _ = try Self.geometry(query: [1, 10, 2, 96], key: [1, 10, 2, 96])
            Issue.record("d = 96 has no kernel")
        } catch let NunchakuError.unsupported(context, reason) {
            #expect(context == "attention query [1, 10, 2, 96]")
            #expect(reason.contains("96") && reason.contains("64, 128"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func mismatchedOperandsAreRefused() {
        let q = [2, 10, 4, 64]
        #expect(throws: NunchakuError.shapeMismatch(context: "attention key", expected: [2, 12, 4, 64], actual: [2, 12, 3, 64])) {
            try Self.geometry(query: q, key: [2, 12, 3, 64])
        }
        #expect(throws: NunchakuError.shapeMismatch(context: "attention value", expected: [2, 12, 4, 64], actual: [2, 11, 4, 64])) {
            try Self.geometry(query: q, key: [2, 12, 4, 64], value: [2, 11, 4, 64])
        }
        #expect(throws: NunchakuError.dtypeMismatch(context: "attention key", expected: [.bf16], actual: .f16)) {
            try Self.geometry(query: q, key: [2, 12, 4, 64], keyDType: .f16)
        }
        #expect(throws: NunchakuError.self) { try Self.geometry(query: q, key: [2, 12, 4, 64], dtype: .f32) }
        #expect(throws: NunchakuError.self) { try Self.geometry(query: q, key: [2, 0, 4, 64]) }
        #expect(throws: NunchakuError.self) { try Self.geometry(query: [2, 10, 256], key: [2, 12, 4, 64]) }
        #expect(throws: NunchakuError.shapeMismatch(context: "attention output", expected: q, actual: [2, 10, 4, 128])) {
            try Self.geometry(query: q, key: [2, 12, 4, 64], output: [2, 10, 4, 128])
        }
        #expect(throws: NunchakuError.dtypeMismatch(context: "attention keyMask", expected: [.u8, .bool], actual: .f32)) {
            try Self.geometry(query: q, key: [2, 12, 4, 64], mask: ([2, 12], .f32))
        }
        #expect(throws: NunchakuError.shapeMismatch(context: "attention keyMask", expected: [2, 12], actual: [2, 10])) {
            try Self.geometry(query: q, key: [2, 12, 4, 64], mask: ([2, 10], .bool))
        }
    }
}

@Suite(.enabled(if: NVRTCAvailability.usable || NVRTCAvailability.required,
                "NVRTC not found (pip install nvidia-cuda-nvrtc, or set NUNCHAKU_NVRTC_PATH); set NUNCHAKU_CI=1 to fail instead"))
struct TensorCorePathTests {
    /// The PTX of `file` for sm_90.
    static func ptx(_ file: String) throws -> String {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        let source = try #require(KernelRegistry.sources.first { $0.name == file })
        let (image, _) = try compiler.build(source, for: CUDATarget(architecture: 90, output: .ptx))
        return String(decoding: image.bytes, as: UTF8.self)
    }

    @Test(arguments: ["attention_fa2.cu", "gemm_mma.cu"])
    func matrixKernelsUseTensorCoresAndAsynchronousCopies(file: String) throws {
        let ptx = try Self.ptx(file)
        #expect(ptx.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"))
        #expect(ptx.contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"))
        #expect(ptx.contains("ldmatrix.sync.aligned.m8n8.x4.shared.b16"))
        #expect(ptx.contains("cp.async.cg.shared.global"))
        #expect(!ptx.contains(".local"), "\(file) uses local memory (a register array indexed at run time?)")
    }
}
