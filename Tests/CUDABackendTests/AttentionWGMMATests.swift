@testable import CUDABackend
import NunchakuCore
import Testing

/// The wgmma attention kernel's launch shape and the choice between it and the FA2 kernel (no GPU needed).
@Suite struct AttentionKernelSelectionTests {
    static let hopper = CUDATarget(architecture: 90, architectureSpecific: true)
    static let hopperSharedMemory = 232_448

    static func select(_ requested: AttentionKernel? = nil, environment: String? = nil, target: CUDATarget = hopper,
                       sharedMemory: Int = hopperSharedMemory, headDim: Int = 128) throws -> AttentionKernel {
        try AttentionKernel.select(requested: requested, environment: environment, target: target,
                                   sharedMemoryLimit: sharedMemory, headDim: headDim)
    }

    @Test func fluxShapeLaunchesTheWGMMAKernel() throws {
        let flux = try AttentionTests.geometry(query: [1, 4608, 24, 128], key: [1, 4608, 24, 128])
        let launch = flux.launch(.wgmma, multiprocessors: 132)
        #expect(launch.kernelName == "nunchaku_attention_wgmma_bf16_d128")
        #expect(launch.grid == CUDADim3(132))  // 864 work units on a persistent grid
        #expect(AttentionWGMMALaunch.workUnits(batch: 1, queryTokens: 4608, heads: 24) == 864)
        #expect(launch.threadsPerBlock == 384)
        #expect(launch.sharedMemoryBytes == 230_512)
        let ragged = try AttentionTests.geometry(query: [2, 129, 3, 64], key: [2, 7, 3, 64], dtype: .f16, mask: ([2, 7], .bool))
        // 2 query blocks × 3 heads × 2 samples = 12 units: fewer than the multiprocessors, one block each.
        #expect(ragged.launch(.wgmma, multiprocessors: 132) == AttentionLaunch(kernelName: "nunchaku_attention_wgmma_f16_d64", grid: CUDADim3(12),
                                                          threadsPerBlock: 384, sharedMemoryBytes: 115_824))
        #expect(ragged.launch(.wgmma, multiprocessors: 5).grid == CUDADim3(5))
        #expect(ragged.launch(.fa2, multiprocessors: 132) == AttentionLaunch(kernelName: ragged.kernelName, grid: ragged.grid, threadsPerBlock: 128,
                                                        sharedMemoryBytes: ragged.sharedMemoryBytes))
        #expect(KernelRegistry.source(defining: launch.kernelName)?.name == "attention_wgmma.cu")
    }

    @Test func hopperGetsWGMMAAndEverythingElseFA2() throws {
        #expect(try Self.select() == .wgmma)
        #expect(try Self.select(headDim: 64) == .wgmma)
        for target in [CUDATarget(architecture: 80), CUDATarget(architecture: 89), CUDATarget(architecture: 90, output: .ptx),
                       CUDATarget(architecture: 100, architectureSpecific: true), CUDATarget(architecture: 120, architectureSpecific: true)] {
            #expect(try Self.select(target: target) == .fa2, "\(target)")
        }
        #expect(try Self.select(sharedMemory: 230_511) == .fa2)
        #expect(try Self.select(sharedMemory: 230_511, headDim: 64) == .wgmma)
    }

    @Test func environmentAndRequestOverrideTheChoice() throws {
        #expect(try Self.select(environment: "fa2") == .fa2)
        #expect(try Self.select(environment: "auto") == .wgmma)
        #expect(try Self.select(environment: "wgmma") == .wgmma)
        #expect(try Self.select(.wgmma, environment: "fa2") == .wgmma)
        #expect(try Self.select(.fa2) == .fa2)
        #expect(throws: NunchakuError.invalidArgument(context: "NUNCHAKU_ATTENTION_KERNEL", reason: "'fa3' is not one of fa2, wgmma, auto")) {
            try Self.select(environment: "fa3")
        }
    }

    @Test func wgmmaWhereItCannotRunIsRefusedByName() {
        do {
            _ = try Self.select(.wgmma, target: CUDATarget(architecture: 89))
            Issue.record("wgmma on sm_89 must be refused")
        } catch let NunchakuError.unsupported(context, reason) {
            #expect(context == "attention kernel wgmma")
            #expect(reason.contains("sm_90a") && reason.contains("sm_89"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(throws: NunchakuError.self) { try Self.select(environment: "wgmma", target: CUDATarget(architecture: 86)) }
    }
}

/// What NVRTC makes of attention_wgmma.cu for sm_90a: wgmma and setmaxnreg present, no spills, no serialised
/// wgmma pipeline (ptxas C7513/C7515) and no ignored setmaxnreg (C7508).
@Suite(.enabled(if: NVRTCAvailability.usable || NVRTCAvailability.required,
                "NVRTC not found (pip install nvidia-cuda-nvrtc, or set NUNCHAKU_NVRTC_PATH); set NUNCHAKU_CI=1 to fail instead"))
struct AttentionWGMMACompileTests {
    static let source = KernelRegistry.sources.first { $0.name == "attention_wgmma.cu" }

    @Test func sm90aBuildUsesWGMMAWithoutSpillsOrSerialisation() throws {
        let source = try #require(Self.source)
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"),
                                      extraOptions: ["--ptxas-options=-v"])
        let (cubin, _) = try compiler.build(source, for: CUDATarget(architecture: 90, architectureSpecific: true))
        let log = cubin.log
        // No spills and no stack frame (a register array indexed at run time would land in local memory).
        #expect(log.components(separatedBy: "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads").count - 1 ==
                source.kernelNames.count, "\(log)")
        for warning in ["C7508", "C7513", "C7515"] { #expect(!log.contains(warning), "\(log)") }

        let (ptx, _) = try compiler.build(source, for: CUDATarget(architecture: 90, architectureSpecific: true, output: .ptx))
        let text = String(decoding: ptx.bytes, as: UTF8.self)
        #expect(text.contains("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16"))
        #expect(text.contains("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16"))
        // The e4m3 entry points (16-bit output, or the fast W4A4 codes of the layers reading it): Q·Kᵀ from shared
        // memory and P·V with P from registers, P rounded by the hardware.
        for kernel in ["nunchaku_attention_wgmma_fp8_bf16_d128", "nunchaku_attention_wgmma_fp8_f16_d128",
                       "nunchaku_attention_wgmma_fp8_codes_bf16_d128", "nunchaku_attention_wgmma_fp8_codes_f16_d128"] {
            #expect(source.kernelNames.contains(kernel) && text.contains(".entry \(kernel)("))
        }
        #expect(text.contains("wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3"))
        #expect(text.contains("cvt.rn.satfinite.e4m3x2.f32"))
        #expect(text.contains("setmaxnreg.inc.sync.aligned.u32 240"))
        // Inputs arrive by tensor copies through three by-value tensor maps, no 16-byte cp.async left.
        #expect(text.contains("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"))
        #expect(text.contains("mbarrier.arrive.expect_tx.shared::cta.b64"))
        #expect(!text.contains("cp.async.cg"))
        #expect(text.components(separatedBy: ".param .align 64 .b8 ").count - 1 == 3 * source.kernelNames.count, "\(text.prefix(2000))")
    }

    @Test func otherTargetsGetTrappingEntryPoints() throws {
        let source = try #require(Self.source)
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        let (ptx, _) = try compiler.build(source, for: CUDATarget(architecture: 89, output: .ptx))
        let text = String(decoding: ptx.bytes, as: UTF8.self)
        #expect(!text.contains("wgmma.mma_async") && !text.contains("setmaxnreg"))
        #expect(text.contains("trap;"))
        for kernel in source.kernelNames { #expect(text.contains(".entry \(kernel)(")) }
    }
}
