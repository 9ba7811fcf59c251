@testable import CUDABackend
import Testing

/// The host-side bookkeeping of CUDA graph capture (the capture itself runs in the `flux.graph` self-test on a GPU).
@Suite struct GraphCaptureTests {
    @Test func graphMemoryIsFreedInTheGraphAndOlderBuffersAreKept() {
        var ledger = CUDAGraphCaptureLedger<String>()
        ledger.allocated(0x1000, byteCount: 256)
        ledger.allocated(0x2000, byteCount: 64)
        // A graph allocation dropped during the capture: its free becomes a node of the graph.
        let graphBufferFreed = ledger.shouldFreeNow(0x1000, byteCount: 256, stream: "capture")
        #expect(graphBufferFreed)
        // A buffer made before the capture: kept alive, freed on its own stream after the graph.
        let olderBufferFreed = ledger.shouldFreeNow(0x9000, byteCount: 4096, stream: "side")
        #expect(!olderBufferFreed)
        #expect(ledger.deferredFrees.map(\.address) == [0x9000])
        #expect(ledger.deferredFrees.map(\.byteCount) == [4096])
        #expect(ledger.deferredFrees.map(\.stream) == ["side"])
        // The graph allocation still referenced breaks the graph; the one freed does not.
        #expect(ledger.outliving.map(\.address) == [0x2000])
        // Once freed, an address the graph allocated again is a new allocation.
        let freedTwice = ledger.shouldFreeNow(0x1000, byteCount: 256, stream: "capture")
        #expect(!freedTwice)
        #expect(ledger.deferredFrees.count == 2)
    }

    @Test func outlivingBuffersAreListedLargestFirst() {
        var ledger = CUDAGraphCaptureLedger<Int>()
        for (index, size) in [64, 1 << 20, 512, 8, 4096].enumerated() { ledger.allocated(UInt64(index + 1) << 20, byteCount: size) }
        #expect(ledger.outliving.map(\.byteCount) == [1 << 20, 4096, 512, 64, 8])
        let text = CUDAGraphCaptureLedger<Int>.describeOutliving(ledger.outliving)
        #expect(text.hasPrefix("5 buffers ("))
        #expect(text.contains("1.0 MiB, 4.0 KiB, 512 B, 64 B, …"))
        #expect(text.contains("still referenced at its end"))
        #expect(CUDAGraphCaptureLedger<Int>.describeOutliving([(address: 1, byteCount: 8)]).hasPrefix("1 buffer (8 B: 8 B)"))
    }

    @Test func captureErrorsNameWhatWasCapturedAndWhy() {
        let error = CUDAError.graphCapture(
            context: "the FLUX transformer step (batch 1, 4096 image + 512 text tokens, guidance)",
            reason: "cuStreamSynchronize failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (900): operation not permitted when stream is capturing")
        #expect("\(error)" == "CUDA graph capture of the FLUX transformer step (batch 1, 4096 image + 512 text tokens, guidance) failed: "
            + "cuStreamSynchronize failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (900): operation not permitted when stream is capturing")
    }

    @Test func captureModesAreTheDriverValues() {
        // cuda.h: CU_STREAM_CAPTURE_MODE_GLOBAL = 0, _THREAD_LOCAL = 1, _RELAXED = 2.
        #expect(CUDAStreamCaptureMode.allCases.map(\.rawValue) == [0, 1, 2])
        #expect(CUDAStreamCaptureMode.allCases.map { "\($0)" } == ["global", "threadLocal", "relaxed"])
    }
}
