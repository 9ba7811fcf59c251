import CUDABackend
import NunchakuCore
@testable import SelfTest
import Testing

@Suite struct CatalogTests {
    static let cases = SelfTestCatalog.cases

    @Test func namesAreUniqueAndTolerancesSensible() {
        let names = Self.cases.map(\.name)
        #expect(Set(names).count == names.count, "duplicate case names")
        for testCase in Self.cases {
            // Copies, the TinyChat dequantization (same float32 operations as the CPU), graph replays and the
            // pipeline's sampling loop and the side stream (the same kernels as the eager step) must be bit-exact.
            let exactKernels: Set = ["awq.tinychat", "flux.graph", "flux.prefetch", "flux.side_stream", "flux.loop"]
            let isExact = testCase.kernel.hasSuffix("_tokens") || exactKernels.contains(testCase.kernel)
            #expect(isExact ? testCase.tolerance == 0 : (testCase.tolerance > 0 && testCase.tolerance <= 0.05), "\(testCase.name)")
        }
    }

    @Test func everyOpKernelIsCheckedInBothFormats() {
        let kernels = ["layernorm", "layernorm_modulate", "rmsnorm", "gelu_tanh", "silu", "gated_add", "rope", "concat_tokens",
                       "split_tokens", "attention", "gemm.mma", "gemm.cublasLt", "norm.quantize"]
        for kernel in kernels {
            for dtype in [DType.bf16, .f16] {
                #expect(Self.cases.contains { $0.kernel == kernel && $0.dtype == dtype }, "\(kernel) \(dtype) has no case")
            }
        }
    }

    @Test func gemmCoversFluxShapes() {
        for implementation in ["mma", "cublasLt"] {
            let names = Self.cases.filter { $0.kernel == "gemm.\(implementation)" && $0.dtype == .bf16 }.map(\.shape)
            for m in [1, 77, 333, 4096, 4608] { #expect(names.contains { $0.hasPrefix("M=\(m) ") }, "M=\(m)") }
            for n in [3072, 9216, 12288, 15360] { #expect(names.contains { $0.contains("N=\(n) ") }, "N=\(n)") }
            for k in [3072, 12288] { #expect(names.contains { $0.contains("K=\(k)") }, "K=\(k)") }
        }
        #expect(Self.cases.contains { $0.kernel == "attention" && $0.shape.hasPrefix("B=1 H=24 Sq=4608 Skv=4608 d=128") })
    }

    @Test func filtersMatchWordBeginnings() {
        let bf16 = SelfTestCase(kernel: "attention", dtype: .bf16, shape: "B=1 Sq=4608", tolerance: 1) { _ in
            SelfTestOutcome(comparison: SelfTestComparison())
        }
        #expect(bf16.matches("attention"))
        #expect(bf16.matches("ATT bf16"))
        #expect(!bf16.matches("f16"))
        #expect(bf16.matches("Sq=4608"))
        #expect(!bf16.matches("Sq=46080"))
        #expect(!bf16.matches("attention gemm"))
        #expect(SelfTestCatalog.selecting([]).count == Self.cases.count)
        let gemm = SelfTestCatalog.selecting(["gemm.mma f16", "rmsnorm bf16"])
        #expect(!gemm.isEmpty && gemm.allSatisfy { ($0.kernel == "gemm.mma" && $0.dtype == .f16) || ($0.kernel == "rmsnorm" && $0.dtype == .bf16) })
    }
}
