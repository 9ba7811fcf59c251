@testable import CUDABackend
import NunchakuCore
import Testing

@Suite struct GemmTests {
    static func geometry(x: [Int], weight: [Int], bias: [Int]? = nil, output: [Int]? = nil,
                         dtypes: (DType, DType, DType?, DType) = (.bf16, .bf16, nil, .bf16)) throws -> GEMMGeometry {
        try GEMMGeometry(x: x, weight: weight, bias: bias, output: output ?? (Array(x.dropLast()) + [weight[0]]), dtypes: dtypes)
    }

    @Test func leadingDimensionsFlattenIntoM() throws {
        let g = try Self.geometry(x: [2, 333, 3072], weight: [9216, 3072], bias: [9216], dtypes: (.bf16, .bf16, .bf16, .bf16))
        #expect(g.m == 666 && g.n == 9216 && g.k == 3072 && g.hasBias)
        #expect(g.grid == CUDADim3(72, 6))
        #expect(g.kernelName == "nunchaku_gemm_bf16")
        let expectedFlops: Double = 2 * 666 * 9216 * 3072
        #expect(g.flops == expectedFlops)
        let single = try Self.geometry(x: [3072], weight: [3072, 3072], dtypes: (.f16, .f16, nil, .f16))
        #expect(single.m == 1 && single.kernelName == "nunchaku_gemm_f16" && !single.hasBias)
    }

    @Test func sharedMemoryMatchesTheKernelsPipeline() {
        // gemm_mma.cu: 3 stages of 128 x rows and 128 W rows, 32 + 8 (padding) bf16 each.
        #expect(GEMMGeometry.sharedMemoryBytes == 61_440)
    }

    @Test func badShapesAndTypesAreRefusedBeforeLaunch() {
        do {
            _ = try Self.geometry(x: [4, 3070], weight: [64, 3070])
            Issue.record("K = 3070 is not a multiple of 8")
        } catch let NunchakuError.unsupported(context, reason) {
            #expect(context == "linear x [4, 3070] weight [64, 3070]")
            #expect(reason.contains("K = 3070"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(throws: NunchakuError.self) { try Self.geometry(x: [4, 64], weight: [60, 64]) }
        #expect(throws: NunchakuError.self) { try Self.geometry(x: [4, 64], weight: [64, 72]) }
        #expect(throws: NunchakuError.shapeMismatch(context: "linear bias", expected: [64], actual: [32])) {
            try Self.geometry(x: [4, 64], weight: [64, 64], bias: [32], dtypes: (.bf16, .bf16, .bf16, .bf16))
        }
        #expect(throws: NunchakuError.shapeMismatch(context: "linear output", expected: [4, 64], actual: [4, 32])) {
            try Self.geometry(x: [4, 64], weight: [64, 64], output: [4, 32])
        }
        #expect(throws: NunchakuError.dtypeMismatch(context: "linear weight", expected: [.bf16], actual: .f16)) {
            try Self.geometry(x: [4, 64], weight: [64, 64], dtypes: (.bf16, .f16, nil, .bf16))
        }
        #expect(throws: NunchakuError.dtypeMismatch(context: "linear bias", expected: [.f16], actual: .f32)) {
            try Self.geometry(x: [4, 64], weight: [64, 64], bias: [64], dtypes: (.f16, .f16, .f32, .f16))
        }
        #expect(throws: NunchakuError.self) { try Self.geometry(x: [4, 64], weight: [64, 64], dtypes: (.f32, .f32, nil, .f32)) }
    }

    @Test func cublasLtHeuristicResultLayout() {
        // cublasLtMatmulHeuristicResult_t: algo (uint64_t[8]), size_t workspaceSize, int state, float wavesCount,
        // int reserved[4].
        let algorithm = 8 * 8, workspaceSize = 8, state = 4, wavesCount = 4, reserved = 4 * 4
        #expect(CUBLASLtConstant.heuristicResultBytes == algorithm + workspaceSize + state + wavesCount + reserved)
        #expect(CUBLASLtConstant.heuristicResultStateOffset == algorithm + workspaceSize)
        #expect(GEMMImplementation.allCases == [.cublasLt, .mma])
    }
}
