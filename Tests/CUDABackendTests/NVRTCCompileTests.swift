@testable import CUDABackend
import NunchakuCore
import Testing

/// Whether NVRTC can be found here; on CI (`NUNCHAKU_CI=1`) these tests run regardless, so a missing NVRTC fails.
enum NVRTCAvailability {
    static let usable = (try? NVRTC.shared()) != nil
    static let required = Environment.value("NUNCHAKU_CI") == "1"
}

@Suite(.enabled(if: NVRTCAvailability.usable || NVRTCAvailability.required,
                "NVRTC not found (pip install nvidia-cuda-nvrtc, or set NUNCHAKU_NVRTC_PATH); set NUNCHAKU_CI=1 to fail instead"))
struct NVRTCCompileTests {
    static let targets = [
        CUDATarget(architecture: 80), CUDATarget(architecture: 86), CUDATarget(architecture: 89),
        CUDATarget(architecture: 90, architectureSpecific: true), CUDATarget(architecture: 120, architectureSpecific: true),
    ]

    @Test func nvrtcLoadsWithItsBuiltinsAndKnowsTheTargets() throws {
        let nvrtc = try NVRTC.shared()
        #expect(nvrtc.version.major >= 12)
        #expect(nvrtc.builtinsPath != nil, "libnvrtc-builtins should be found beside \(nvrtc.libraryPath)")
        for architecture in [80, 86, 89, 90, 120] {
            #expect(nvrtc.supportedArchitectures.contains(architecture), "NVRTC \(nvrtc.version) lacks sm_\(architecture)")
        }
    }

    @Test(arguments: targets)
    func everyKernelFileCompilesToACubin(target: CUDATarget) throws {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        for source in KernelRegistry.sources {
            let (image, record) = try compiler.build(source, for: target)
            #expect(Array(image.bytes.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(source.name) for \(target) is not an ELF cubin")
            #expect(!record.fromCache)
        }
    }

    @Test func ptxNamesEveryKernel() throws {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        for source in KernelRegistry.sources {
            let (image, _) = try compiler.build(source, for: CUDATarget(architecture: 90, output: .ptx))
            let ptx = String(decoding: image.bytes, as: UTF8.self)
            for kernel in source.kernelNames {
                #expect(ptx.contains(".entry \(kernel)("), "\(kernel) missing from the PTX of \(source.name)")
            }
            #expect(image.loadableBytes.last == 0)
        }
    }

    @Test func secondBuildComesFromTheCacheWithTheSameBytes() throws {
        let folder = try TemporaryFolder()
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(directory: folder.path))
        let source = try #require(KernelRegistry.sources.first)
        let target = CUDATarget(architecture: 90, architectureSpecific: true)
        let (first, firstRecord) = try compiler.build(source, for: target)
        let (second, secondRecord) = try compiler.build(source, for: target)
        #expect(!firstRecord.fromCache && firstRecord.cacheNote == nil)
        #expect(secondRecord.fromCache)
        #expect(first.bytes == second.bytes)
        let (third, thirdRecord) = try compiler.build(source, for: target, bypassingCache: true)
        #expect(!thirdRecord.fromCache && third.bytes == first.bytes)
    }

    @Test func compileErrorsCarryTheLogAndTheFileName() throws {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        let broken = KernelSource(name: "broken.cu", text: "#include \"nunchaku_common.cuh\"\nNK_KERNEL void k() { undefined_thing(); }",
                                  kernelNames: ["k"])
        do {
            _ = try compiler.build(broken, for: CUDATarget(architecture: 90, architectureSpecific: true))
            Issue.record("a broken source must not compile")
        } catch let CUDAError.compilationFailed(source, target, log) {
            #expect(source == "broken.cu")
            #expect(target == "sm_90a")
            #expect(log.contains("undefined_thing"))
        }
    }

    @Test func preludeRefusesArchitecturesBelowSm80() throws {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        let source = try #require(KernelRegistry.sources.first)
        do {
            _ = try compiler.build(source, for: CUDATarget(architecture: 75))
            Issue.record("sm_75 must be refused by the prelude")
        } catch let CUDAError.compilationFailed(_, _, log) {
            #expect(log.contains("sm_80"))
        }
    }
}

@Suite struct NVRTCLoadingTests {
    @Test func missingNVRTCSaysWhereItLooked() {
        do {
            _ = try NVRTC(candidates: ["/nonexistent/libnvrtc.so.13"], searchDescription: "searched /nonexistent")
            Issue.record("loading a missing file must fail")
        } catch let CUDAError.nvrtcUnavailable(reason) {
            #expect(reason.contains("/nonexistent"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func aLibraryWithoutNVRTCSymbolsIsRefused() {
        do {
            _ = try NVRTC(candidates: ["libm.so.6"], searchDescription: "")
            Issue.record("libm is not NVRTC")
        } catch let CUDAError.nvrtcUnavailable(reason) {
            #expect(reason.contains("nvrtcVersion"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
