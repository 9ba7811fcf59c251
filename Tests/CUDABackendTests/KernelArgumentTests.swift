@testable import CUDABackend
import Testing

@Suite struct KernelArgumentTests {
    @Test func argumentsAreAlignedAndHoldTheirValues() throws {
        let tensorMap = (0..<128).map { UInt8($0) }
        let arguments: [KernelArgument] = [
            .pointer(0xDEAD_BEEF_0000), .int32(-7), .float(1.5), .int64(1 << 40), .uint32(9), .bytes(tensorMap, alignment: 64),
            .double(0.25), .uint64(UInt64.max),
        ]
        let pack = try KernelArgumentPack(arguments)
        #expect(pack.offsets == [0, 8, 12, 16, 24, 64, 192, 200])
        #expect(pack.byteCount == 208)
        #expect(pack.alignment == 64)
        pack.withParameterPointers { pointers in
            #expect(pointers[0]!.load(as: UInt64.self) == 0xDEAD_BEEF_0000)
            #expect(pointers[1]!.load(as: Int32.self) == -7)
            #expect(pointers[2]!.load(as: Float.self) == 1.5)
            #expect(pointers[3]!.load(as: Int64.self) == 1 << 40)
            #expect(pointers[4]!.load(as: UInt32.self) == 9)
            #expect(Int(bitPattern: pointers[5]!) % 64 == 0)
            #expect((0..<128).allSatisfy { pointers[5]!.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0) })
            #expect(pointers[6]!.load(as: Double.self) == 0.25)
            #expect(pointers[7]!.load(as: UInt64.self) == UInt64.max)
        }
    }

    @Test func badByteArgumentsAreRefused() {
        #expect(throws: CUDAError.self) { try KernelArgumentPack([.bytes([1, 2, 3], alignment: 3)]) }
        #expect(throws: CUDAError.self) { try KernelArgumentPack([.int32(1), .bytes([], alignment: 4)]) }
    }
}

@Suite struct SelfCheckInputTests {
    @Test func inputsStartWithSpecialValuesAndAreReproducible() {
        let values = KernelSelfCheck.testValues(count: 1000)
        #expect(values.count == 1000)
        #expect(values[0] == 0 && values[1].sign == .minus && values[2] == .infinity && values[3] == -.infinity)
        #expect(values[4].isNaN)
        #expect(values[7] == .leastNonzeroMagnitude)
        #expect(values.map(\.bitPattern) == KernelSelfCheck.testValues(count: 1000).map(\.bitPattern))
        #expect(values.contains { $0.isSubnormal && !$0.isZero } && values.contains { $0.isNormal && abs($0) < 8 })
    }
}
