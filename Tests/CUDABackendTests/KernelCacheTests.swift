@testable import CUDABackend
import Foundation
import Testing

@Suite struct KernelCacheTests {
    let source = KernelSource(name: "demo.cu", text: "NK_KERNEL void demo() {}", kernelNames: ["demo"])
    let header = KernelHeader(name: "h.cuh", text: "#pragma once")
    let target = CUDATarget(architecture: 90, architectureSpecific: true)

    func key(source: KernelSource? = nil, headers: [KernelHeader]? = nil, target: CUDATarget? = nil,
             options: [String] = ["--std=c++17"], version: CUDAVersion = CUDAVersion(major: 13, minor: 0)) -> String {
        KernelCache.key(source: source ?? self.source, headers: headers ?? [header], target: target ?? self.target,
                        options: options, compilerVersion: version)
    }

    @Test func keyChangesWithEveryInput() {
        let base = key()
        #expect(base.count == 64)
        #expect(key() == base)
        #expect(key(source: KernelSource(name: "demo.cu", text: "NK_KERNEL void demo() { }", kernelNames: ["demo"])) != base)
        #expect(key(headers: [KernelHeader(name: "h.cuh", text: "#pragma once\n")]) != base)
        #expect(key(target: CUDATarget(architecture: 90)) != base)
        #expect(key(options: ["--std=c++17", "-lineinfo"]) != base)
        #expect(key(version: CUDAVersion(major: 13, minor: 1)) != base)
    }

    @Test func environmentChoosesTheFolderOrTurnsCachingOff() {
        #expect(KernelCache.fromEnvironment { ["XDG_CACHE_HOME": "/x", "HOME": "/h"][$0] }.directory == "/x/swift-nunchaku/kernels")
        #expect(KernelCache.fromEnvironment { ["HOME": "/h"][$0] }.directory == "/h/.cache/swift-nunchaku/kernels")
        let off = KernelCache.fromEnvironment { ["NUNCHAKU_KERNEL_CACHE": "off", "HOME": "/h"][$0] }
        #expect(off.directory == nil)
        #expect(off.disabledReason == "NUNCHAKU_KERNEL_CACHE=off")
        #expect(KernelCache.fromEnvironment { _ in nil }.directory == nil)
    }

    @Test func storedImagesComeBackAndDamagedOnesAreDropped() throws {
        let folder = try TemporaryFolder()
        let cache = KernelCache(directory: "\(folder.path)/kernels")
        let path = try #require(cache.path(forKey: key(), source: source, target: target))
        #expect(path.hasPrefix("\(folder.path)/kernels/demo-sm_90a-"))
        #expect(path.hasSuffix(".cubin"))
        #expect(cache.load(path: path) == nil)

        let payload = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try cache.store(payload, path: path)
        #expect(cache.load(path: path) == payload)
        #expect(cache.contents().files == 1)
        #expect(cache.contents().bytes == payload.count + 37)

        var damaged = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        damaged[damaged.count - 1] ^= 0xFF
        try Data(damaged).write(to: URL(fileURLWithPath: path))
        #expect(cache.load(path: path) == nil)
        #expect(!FileManager.default.fileExists(atPath: path), "a damaged entry is removed")
    }

    @Test func disabledCacheStoresNothing() throws {
        let cache = KernelCache(disabledBecause: "test")
        #expect(cache.path(forKey: key(), source: source, target: target) == nil)
        #expect(cache.contents().files == 0)
    }

    @Test func unwritableFolderIsAnIOErrorNamingThePath() throws {
        let folder = try TemporaryFolder()
        try folder.touch("blocker")
        let cache = KernelCache(directory: "\(folder.path)/blocker/kernels")
        let path = "\(folder.path)/blocker/kernels/x.cubin"
        do {
            try cache.store([1, 2, 3], path: path)
            Issue.record("writing under a regular file must fail")
        } catch {
            #expect("\(error)".contains(path))
        }
    }
}
