@testable import CUDABackend
import Foundation
import Testing

@Suite struct KernelRegistryTests {
    /// `Sources/CUDABackend/Kernels`, found from this file's path.
    static let kernelFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/CUDABackend/Kernels").path

    @Test func embeddedTextIsTheFileOnDisk() throws {
        for file in KernelRegistry.sources.map({ ($0.name, $0.text) }) + KernelRegistry.headers.map({ ($0.name, $0.text) }) {
            let onDisk = try String(contentsOfFile: "\(Self.kernelFolder)/\(file.0)", encoding: .utf8)
            #expect(file.1 == onDisk, "\(file.0) embedded text differs from the file")
        }
    }

    @Test func everyKernelFileIsRegistered() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.kernelFolder)
        #expect(Set(files.filter { $0.hasSuffix(".cu") }) == Set(KernelRegistry.sources.map(\.name)))
        #expect(Set(files.filter { $0.hasSuffix(".cuh") }) == Set(KernelRegistry.headers.map(\.name)))
    }

    @Test func listedKernelsAreExactlyTheEntryPointsOfEachFile() {
        for source in KernelRegistry.sources {
            let declared = source.text.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("NK_KERNEL void ") else { return nil }
                var name = line.dropFirst("NK_KERNEL void ".count)
                if name.hasPrefix("__launch_bounds__(") { name = name.drop { $0 != ")" }.dropFirst().drop { $0 == " " } }
                return String(name.prefix { $0 != "(" })
            }
            #expect(declared.sorted() == source.kernelNames.sorted(), "\(source.name)")
        }
        #expect(KernelRegistry.source(defining: "nunchaku_convert_f32_to_bf16")?.name == "convert.cu")
        #expect(KernelRegistry.source(defining: "no_such_kernel") == nil)
    }
}
