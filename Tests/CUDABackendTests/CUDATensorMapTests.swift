@testable import CUDABackend
import NunchakuCore
import Testing

/// Tensor-map descriptions and their kernel arguments (the encoding itself needs a GPU: the attention.wgmma
/// self-test cases run it).
@Suite struct CUDATensorMapTests {
    static func layout(elementType: CUDATensorMapLayout.ElementType = .bfloat16, address: CUdeviceptr = 0x7F00_0000_0000,
                       dimensions: [Int] = [128, 24, 4608, 1], strides: [Int] = [256, 6144, 28_311_552],
                       box: [Int] = [64, 1, 128, 1], swizzle: CUDATensorMapLayout.Swizzle = .bytes128) throws -> CUDATensorMapLayout {
        try CUDATensorMapLayout(name: "key", elementType: elementType, address: address, dimensions: dimensions, strides: strides,
                                box: box, swizzle: swizzle)
    }

    /// The reason `layout` is refused with, or nil when it is accepted.
    static func refusal(_ make: () throws -> CUDATensorMapLayout) -> String? {
        do {
            _ = try make()
            return nil
        } catch let CUDAError.invalidArgument(context, reason) {
            #expect(context == "tensor map of key")
            return reason
        } catch {
            Issue.record("unexpected \(error)")
            return "\(error)"
        }
    }

    @Test func attentionOperandsMapAsFourDimensionalBoxesOfOneTile() throws {
        let layout = try AttentionWGMMALaunch.tensorMapLayout(name: "key", address: 0x7F00_0000_0100, shape: [2, 4608, 24, 128], dtype: .bf16)
        #expect(layout.dimensions == [128, 24, 4608, 2])
        #expect(layout.strides == [256, 24 * 256, 4608 * 24 * 256])
        #expect(layout.box == [64, 1, 128, 1])
        #expect(layout.elementType == .bfloat16 && layout.swizzle == .bytes128 && layout.l2Promotion == .bytes256)
        #expect(layout.boxBytes == 16_384)
        let half = try AttentionWGMMALaunch.tensorMapLayout(name: "query", address: 0x1000, shape: [1, 333, 3, 64], dtype: .f16)
        #expect(half.elementType == .float16 && half.dimensions == [64, 3, 333, 1] && half.strides == [128, 384, 333 * 384])
        #expect(half.name == "attention query [1, 333, 3, 64]")
        // A view that starts 8 bytes into a buffer cannot be read by tensor copies.
        #expect(throws: CUDAError.self) {
            try AttentionWGMMALaunch.tensorMapLayout(name: "value", address: 0x1008, shape: [1, 16, 2, 64], dtype: .bf16)
        }
    }

    @Test func layoutsTheDriverWouldRefuseAreRefusedByName() {
        #expect(Self.refusal { try Self.layout() } == nil)
        #expect(Self.refusal { try Self.layout(address: 0x7F00_0000_0008) }?.contains("not 16-byte aligned") == true)
        #expect(Self.refusal { try Self.layout(dimensions: [], strides: [], box: []) }?.contains("rank 0") == true)
        #expect(Self.refusal { try Self.layout(dimensions: [1, 1, 1, 1, 1, 1], strides: [16, 16, 16, 16, 16], box: [8, 1, 1, 1, 1, 1]) }?
            .contains("rank 6") == true)
        #expect(Self.refusal { try Self.layout(strides: [256, 6144]) }?.contains("need 3 strides") == true)
        #expect(Self.refusal { try Self.layout(dimensions: [128, 24, 0, 1]) }?.contains("dimension 2 has 0") == true)
        #expect(Self.refusal { try Self.layout(dimensions: [128, 24, (1 << 32) + 1, 1]) }?.contains("dimension 2") == true)
        #expect(Self.refusal { try Self.layout(strides: [256, 6152, 28_311_552]) }?.contains("stride 2 of 6152 bytes is not a multiple of 16") == true)
        #expect(Self.refusal { try Self.layout(strides: [256, 6144, 1 << 40]) }?.contains("below 2^40") == true)
        #expect(Self.refusal { try Self.layout(strides: [128, 6144, 28_311_552]) }?.contains("smaller than the 256 bytes") == true)
        #expect(Self.refusal { try Self.layout(strides: [256, 6144, 6144 * 4607]) }?.contains("stride 3") == true)
        #expect(Self.refusal { try Self.layout(box: [64, 1, 257, 1]) }?.contains("box edge 2 of 257") == true)
        #expect(Self.refusal { try Self.layout(box: [64, 0, 128, 1]) }?.contains("box edge 1 of 0") == true)
        #expect(Self.refusal { try Self.layout(box: [12, 1, 128, 1]) }?.contains("24 bytes is not a multiple of 16") == true)
        #expect(Self.refusal { try Self.layout(box: [128, 1, 128, 1]) }?.contains("longer than the 128-byte swizzle span") == true)
        #expect(Self.refusal { try Self.layout(box: [64, 1, 128, 1], swizzle: .bytes64) }?.contains("64-byte swizzle span") == true)
        #expect(Self.refusal { try Self.layout(box: [128, 1, 128, 1], swizzle: .none) } == nil)
        #expect(Self.refusal { try Self.layout(elementType: .float32, box: [32, 1, 128, 1]) }?.contains("smaller than the 512 bytes") == true)
    }

    @Test func mapsTravelAs128ByteParametersAlignedTo64() throws {
        let maps = (0..<3).map { index in CUDATensorMap(bytes: (0..<128).map { UInt8(($0 + 7 * index) & 0xFF) }) }
        let pack = try KernelArgumentPack(maps.map(\.argument) + [.pointer(0xABCD_0000), .pointer(0), .int32(4608), .int32(4608),
                                                                  .int32(24), .float(0.1275)])
        #expect(pack.offsets == [0, 128, 256, 384, 392, 400, 404, 408, 412])
        #expect(pack.byteCount == 416 && pack.alignment == 64)
        pack.withParameterPointers { pointers in
            for (index, map) in maps.enumerated() {
                #expect(Int(bitPattern: pointers[index]!) % 64 == 0)
                #expect(Array(UnsafeRawBufferPointer(start: pointers[index]!, count: 128)) == map.bytes)
            }
            #expect(pointers[3]!.load(as: UInt64.self) == 0xABCD_0000)
            #expect(pointers[8]!.load(as: Float.self) == 0.1275)
        }
    }
}
