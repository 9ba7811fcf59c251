@testable import CUDABackend
import Foundation
import Testing

@Suite struct LibrarySearchTests {
    @Test func wildcardMatching() {
        #expect(CUDALibrarySearch.wildcardMatch("python3*", "python3.11"))
        #expect(CUDALibrarySearch.wildcardMatch("python3*", "python3"))
        #expect(!CUDALibrarySearch.wildcardMatch("python3*", "python2.7"))
        #expect(CUDALibrarySearch.wildcardMatch("cuda-*", "cuda-12.4"))
        #expect(!CUDALibrarySearch.wildcardMatch("cuda-*", "cuda"))
        #expect(CUDALibrarySearch.wildcardMatch("a*b*c", "aXXbYYc"))
        #expect(!CUDALibrarySearch.wildcardMatch("a*b*c", "aXXcYYb"))
        #expect(!CUDALibrarySearch.wildcardMatch("a*a", "a"))
        #expect(CUDALibrarySearch.wildcardMatch("exact", "exact"))
        #expect(!CUDALibrarySearch.wildcardMatch("exact", "exactly"))
    }

    @Test func versionsSortNewestFirst() {
        let sorted = ["cuda-12.9", "cuda-12.10", "cuda-11.8", "cuda-13.0"].sorted(by: CUDALibrarySearch.naturallyDescending)
        #expect(sorted == ["cuda-13.0", "cuda-12.10", "cuda-12.9", "cuda-11.8"])
    }

    @Test func libraryFilesIgnoreOtherNames() throws {
        let folder = try TemporaryFolder()
        for name in ["libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so", "libnvrtc.alt.so.13", "libnvrtc-builtins.so.13.0",
                     "libnvrtc.so.13.bak", "libnvrtc.so.x"] {
            try folder.touch(name)
        }
        let found = CUDALibrarySearch.libraryFiles(named: "libnvrtc", in: folder.path).map { $0.split(separator: "/").last! }
        #expect(found == ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"])
    }

    @Test func searchOrderPutsCUDAHomeBeforeVirtualEnvAndLoaderNamesLast() throws {
        let root = try TemporaryFolder()
        try root.touch("cuda/lib64/libnvrtc.so.13")
        try root.touch("venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnvrtc.so.13")
        try root.touch("venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12")
        let environment = ["CUDA_HOME": "\(root.path)/cuda", "VIRTUAL_ENV": "\(root.path)/venv"]
        let search = CUDALibrarySearch { environment[$0] }
        let candidates = search.candidates(for: .nvrtc)
        let home = candidates.firstIndex(of: "\(root.path)/cuda/lib64/libnvrtc.so.13")
        let wheel = candidates.firstIndex(of: "\(root.path)/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnvrtc.so.13")
        let oldWheel = candidates.firstIndex(of: "\(root.path)/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12")
        #expect(home != nil && wheel != nil && oldWheel != nil)
        #expect(home! < wheel! && wheel! < oldWheel!)
        #expect(Array(candidates.suffix(3)) == ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"])
        #expect(search.sitePackagesDirectories().contains("\(root.path)/venv/lib/python3.12/site-packages"))
    }

    @Test func overrideIsTheOnlyPlaceSearched() throws {
        let root = try TemporaryFolder()
        try root.touch("custom/libnvrtc.so.13")
        try root.touch("cuda/lib64/libnvrtc.so.13")
        let environment = ["NUNCHAKU_NVRTC_PATH": "\(root.path)/custom", "CUDA_HOME": "\(root.path)/cuda"]
        let folderSearch = CUDALibrarySearch { environment[$0] }
        #expect(folderSearch.candidates(for: .nvrtc) == ["\(root.path)/custom/libnvrtc.so.13"])
        let fileSearch = CUDALibrarySearch { ["NUNCHAKU_NVRTC_PATH": "/some/where/libnvrtc.so.13"][$0] }
        #expect(fileSearch.candidates(for: .nvrtc) == ["/some/where/libnvrtc.so.13"])
        #expect(fileSearch.candidates(for: .cublasLt).last == "libcublasLt.so")
    }
}

/// A folder under the system's temporary directory, removed when the value goes away.
final class TemporaryFolder: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("nunchaku-cuda-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Creates an empty file (and its folders) at `relativePath`.
    func touch(_ relativePath: String, contents: [UInt8] = []) throws {
        let file = "\(path)/\(relativePath)"
        try FileManager.default.createDirectory(
            atPath: String(file[..<file.lastIndex(of: "/")!]), withIntermediateDirectories: true)
        try Data(contents).write(to: URL(fileURLWithPath: file))
    }
}
