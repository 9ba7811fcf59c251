@testable import CUDABackend
import NunchakuCore
import Testing

/// An operand description for the shape/dtype checks (no GPU needed).
struct Operand: ShapedOperand {
    let shape: [Int]
    let dtype: DType
    init(_ shape: [Int], _ dtype: DType) {
        self.shape = shape
        self.dtype = dtype
    }
}

@Suite struct OpsTests {
    @Test func everyKernelTheWrappersNameIsRegistered() {
        var names: [String] = []
        for dtype in ["bf16", "f16"] {
            names += ["nunchaku_layernorm_\(dtype)", "nunchaku_rmsnorm_\(dtype)", "nunchaku_gated_add_\(dtype)",
                      "nunchaku_rotary_\(dtype)", "nunchaku_qkv_heads_\(dtype)", "nunchaku_gemm_\(dtype)"]
            names += CUDAActivation.allCases.map { "nunchaku_\($0.rawValue)_\(dtype)" }
            names += [64, 128].map { "nunchaku_attention_\(dtype)_d\($0)" }
        }
        names += ["nunchaku_copy_tokens_16b", "nunchaku_copy_tokens_1b"]
        for name in names { #expect(KernelRegistry.source(defining: name) != nil, "\(name) is not registered") }
    }

    /// A LayerNorm block holds its row in at most four chunks of eight values per thread.
    @Test func layerNormBlockHoldsTheRowInRegisters() {
        #expect(CUDAContext.layerNormThreads(width: 3072) == 128)
        #expect(CUDAContext.layerNormThreads(width: 8) == 64)
        #expect(CUDAContext.layerNormThreads(width: 4104) == 256)
        #expect(CUDAContext.layerNormThreads(width: CUDAContext.layerNormMaximumWidth) == 1024)
        for width in [8, 64, 3072, 4104, 12288, CUDAContext.layerNormMaximumWidth] {
            #expect(CUDAContext.layerNormThreads(width: width) * 4 * 8 >= width)
        }
    }

    @Test func activationFormatsAreBF16AndF16Only() throws {
        #expect(try OperandCheck.suffix(Operand([4], .bf16), "op", "x") == "bf16")
        #expect(try OperandCheck.suffix(Operand([4], .f16), "op", "x") == "f16")
        #expect(throws: NunchakuError.dtypeMismatch(context: "layerNorm x [4]", expected: [.bf16, .f16], actual: .f32)) {
            try OperandCheck.suffix(Operand([4], .f32), "layerNorm", "x")
        }
    }

    @Test func widthsMustFitTheVectorAccesses() throws {
        #expect(try OperandCheck.width(Operand([1, 77, 3072], .bf16), multipleOf: 8, "layerNorm", "x") == 3072)
        do {
            _ = try OperandCheck.width(Operand([1, 77, 3070], .bf16), multipleOf: 8, "layerNorm", "x")
            Issue.record("3070 is not a multiple of 8")
        } catch let NunchakuError.invalidArgument(context, reason) {
            #expect(context == "layerNorm x [1, 77, 3070]")
            #expect(reason.contains("multiple of 8"))
        }
        #expect(throws: NunchakuError.self) { try OperandCheck.width(Operand([4, 0], .bf16), multipleOf: 4, "rmsNorm", "x") }
        #expect(throws: NunchakuError.self) { try OperandCheck.rank(Operand([4, 8], .bf16), 3, "gatedAdd", "residual") }
        #expect(throws: NunchakuError.shapeMismatch(context: "rmsNorm weight", expected: [128], actual: [64])) {
            try OperandCheck.shape(Operand([64], .f32), [128], "rmsNorm", "weight")
        }
    }

    @Test func modulationChunksMustLieInsideTheirTable() throws {
        // FLUX's adaLN output [B, 6·3072]: chunk 4 starts 4·3072 bf16 values in.
        let table = Operand([2, 6 * 3072], .bf16)
        let layout = try ModulationChunk.layout(table: table, chunk: 4, batch: 2, width: 3072, dtype: .bf16, "layerNorm", "scale")
        #expect(layout.byteOffset == 4 * 3072 * 2 && layout.stride == 6 * 3072)
        for (shape, chunk, dtype) in [([2, 6 * 3072], 6, DType.bf16), ([1, 6 * 3072], 0, .bf16), ([2, 3072 + 8], 0, .bf16),
                                      ([2, 6 * 3072], 0, .f16), ([2, 6 * 3072], -1, .bf16)] {
            #expect(throws: NunchakuError.self, "\(shape) chunk \(chunk) \(dtype)") {
                try ModulationChunk.layout(table: Operand(shape, dtype), chunk: chunk, batch: 2, width: 3072, dtype: .bf16, "gatedAdd", "gate")
            }
        }
    }

    @Test func countsMustFitTheKernelsIntParameters() throws {
        #expect(try OperandCheck.int32(3072, "op", "width") == 3072)
        #expect(throws: NunchakuError.self) { try OperandCheck.int32(1 << 31, "op", "width") }
    }
}
