import Testing

/// The fragment maps of `mma.sync.aligned.m16n8k*` from the PTX ISA ("Matrix fragments for mma.m16n8k64 /
/// m16n8k32 / m16n8k16"), and products computed from lane registers through them: the hardware's view of the
/// registers the W4A4 kernels build. g = lane / 4 (groupID), t = lane % 4 (threadID_in_group); element i of a lane
/// sits in register i / (elements per register) at position i % (elements per register), lowest bits first.
enum PTXFragments {
    /// m16n8k64, 4-bit: A (row, k) of element i (0..<32), B (k, column) of element i (0..<16).
    static func s4A(_ lane: Int, _ i: Int) -> (Int, Int) {
        let g = lane / 4, t = lane % 4
        return ((i < 8 || (16..<24).contains(i)) ? g : g + 8, (i < 16 ? 0 : 32) + t * 8 + i % 8)
    }
    static func s4B(_ lane: Int, _ i: Int) -> (Int, Int) { ((i < 8 ? 0 : 32) + (lane % 4) * 8 + i % 8, lane / 4) }

    /// m16n8k32, 8-bit: A element i (0..<16), B element i (0..<8).
    static func s8K32A(_ lane: Int, _ i: Int) -> (Int, Int) {
        let g = lane / 4, t = lane % 4
        return ((i < 4 || (8..<12).contains(i)) ? g : g + 8, (i < 8 ? 0 : 16) + t * 4 + i % 4)
    }
    static func s8K32B(_ lane: Int, _ i: Int) -> (Int, Int) { ((i < 4 ? 0 : 16) + (lane % 4) * 4 + i % 4, lane / 4) }

    /// m16n8k16, 8-bit: A element i (0..<8), B element i (0..<4).
    static func s8K16A(_ lane: Int, _ i: Int) -> (Int, Int) { (i < 4 ? lane / 4 : lane / 4 + 8, (lane % 4) * 4 + i % 4) }
    static func s8K16B(_ lane: Int, _ i: Int) -> (Int, Int) { ((lane % 4) * 4 + i, lane / 4) }

    /// m16n8k16, 16-bit floats: A element i (0..<8), B element i (0..<4).
    static func f16A(_ lane: Int, _ i: Int) -> (Int, Int) {
        let g = lane / 4, t = lane % 4
        return ((i < 2 || (4..<6).contains(i)) ? g : g + 8, (i < 4 ? 0 : 8) + t * 2 + i % 2)
    }
    static func f16B(_ lane: Int, _ i: Int) -> (Int, Int) { ((i < 2 ? 0 : 8) + (lane % 4) * 2 + i % 2, lane / 4) }

    /// D (16×8) = A·B from 4-bit registers: `a[lane]` 4 words, `b[lane]` 2 words; B signed.
    static func mmaS4(_ a: [[UInt32]], _ b: [[UInt32]], unsignedA: Bool) -> [[Int]] {
        integerProduct(a, b, k: 64, bits: 4, unsignedA: unsignedA, aMap: s4A, bMap: s4B)
    }

    /// D = A·B from 8-bit registers: `a[lane]` 4 words, `b[lane]` 2 words.
    static func mmaS8K32(_ a: [[UInt32]], _ b: [[UInt32]], unsignedA: Bool) -> [[Int]] {
        integerProduct(a, b, k: 32, bits: 8, unsignedA: unsignedA, aMap: s8K32A, bMap: s8K32B)
    }

    /// D = A·B from signed 8-bit registers: `a[lane]` 2 words, `b[lane]` 1 word.
    static func mmaS8K16(_ a: [[UInt32]], _ b: [[UInt32]]) -> [[Int]] {
        integerProduct(a, b, k: 16, bits: 8, unsignedA: false, aMap: s8K16A, bMap: s8K16B)
    }

    /// D = A·B from pairs of 16-bit floats (values given directly): `a[lane]` 4 pairs, `b[lane]` 2 pairs.
    static func mmaF16K16(_ a: [[[Float]]], _ b: [[[Float]]]) -> [[Float]] {
        var matrixA = [[Float]](repeating: [Float](repeating: .nan, count: 16), count: 16)
        var matrixB = [[Float]](repeating: [Float](repeating: .nan, count: 8), count: 16)
        for lane in 0..<32 {
            for i in 0..<8 { let (row, k) = f16A(lane, i); matrixA[row][k] = a[lane][i / 2][i % 2] }
            for i in 0..<4 { let (k, column) = f16B(lane, i); matrixB[k][column] = b[lane][i / 2][i % 2] }
        }
        return (0..<16).map { row in (0..<8).map { column in (0..<16).reduce(0) { $0 + matrixA[row][$1] * matrixB[$1][column] } } }
    }

    private static func integerProduct(
        _ a: [[UInt32]], _ b: [[UInt32]], k: Int, bits: Int, unsignedA: Bool,
        aMap: (Int, Int) -> (Int, Int), bMap: (Int, Int) -> (Int, Int)
    ) -> [[Int]] {
        let perWord = 32 / bits
        func element(_ words: [UInt32], _ i: Int, signed: Bool) -> Int {
            let raw = Int((words[i / perWord] >> UInt32(bits * (i % perWord))) & UInt32((1 << bits) - 1))
            return signed && raw >= 1 << (bits - 1) ? raw - (1 << bits) : raw
        }
        var matrixA = [[Int]](repeating: [Int](repeating: 0, count: k), count: 16)
        var matrixB = [[Int]](repeating: [Int](repeating: 0, count: 8), count: k)
        for lane in 0..<32 {
            for i in 0..<(a[lane].count * perWord) { let (row, kk) = aMap(lane, i); matrixA[row][kk] = element(a[lane], i, signed: !unsignedA) }
            for i in 0..<(b[lane].count * perWord) { let (kk, column) = bMap(lane, i); matrixB[kk][column] = element(b[lane], i, signed: true) }
        }
        return (0..<16).map { row in (0..<8).map { column in (0..<k).reduce(0) { $0 + matrixA[row][$1] * matrixB[$1][column] } } }
    }
}

@Suite struct W4A4PTXFragmentTests {
    /// Each map must place the lanes' elements on every matrix position exactly once.
    @Test(arguments: [
        ("s4 A", 32, 16, 64, PTXFragments.s4A), ("s4 B", 16, 64, 8, PTXFragments.s4B),
        ("s8k32 A", 16, 16, 32, PTXFragments.s8K32A), ("s8k32 B", 8, 32, 8, PTXFragments.s8K32B),
        ("s8k16 A", 8, 16, 16, PTXFragments.s8K16A), ("s8k16 B", 4, 16, 8, PTXFragments.s8K16B),
        ("f16 A", 8, 16, 16, PTXFragments.f16A), ("f16 B", 4, 16, 8, PTXFragments.f16B),
    ] as [(String, Int, Int, Int, @Sendable (Int, Int) -> (Int, Int))])
    func fragmentMapsCoverTheMatrixOnce(name: String, elementsPerLane: Int, rows: Int, columns: Int, map: @Sendable (Int, Int) -> (Int, Int)) {
        var seen = Set<Int>()
        for lane in 0..<32 {
            for i in 0..<elementsPerLane {
                let (row, column) = map(lane, i)
                #expect((0..<rows).contains(row) && (0..<columns).contains(column), "\(name) lane \(lane) element \(i)")
                seen.insert(row * columns + column)
            }
        }
        #expect(seen.count == rows * columns, "\(name)")
    }
}
