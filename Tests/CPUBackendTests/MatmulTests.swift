import Testing
@testable import CPUBackend

private func naiveTransposed(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n { for p in 0..<k { c[i * n + j] += Double(a[i * k + p]) * Double(b[j * k + p]) } } }
    return c
}

@Test(arguments: [(1, 1, 1), (3, 5, 7), (4, 4, 8), (17, 9, 33), (64, 48, 130), (1, 300, 64), (130, 2, 16)])
func matmulTransposedMatchesNaive(shape: (Int, Int, Int)) {
    let (m, n, k) = shape
    var rng = SystemRandomNumberGenerator()
    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
    let b = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
    let c = Matmul.multiplyTransposed(a, b, m: m, n: n, k: k)
    let reference = naiveTransposed(a, b, m: m, n: n, k: k)
    for index in c.indices {
        #expect(abs(Double(c[index]) - reference[index]) <= 1e-5 * Double(k), "element \(index) of \(shape)")
    }
}

@Test func matmulAndTransposeAgree() {
    let a: [Float] = [1, 2, 3, 4, 5, 6]          // [2, 3]
    let b: [Float] = [1, 0, 0, 1, 1, 1]          // [3, 2]
    #expect(Matmul.multiply(a, b, m: 2, n: 2, k: 3) == [4, 5, 10, 11])
    #expect(Matmul.transpose(a, rows: 2, columns: 3) == [1, 4, 2, 5, 3, 6])
}

@Test func accumulateAddsToExistingOutput() {
    let a: [Float] = [1, 2], b: [Float] = [3, 4]
    var c: [Float] = [10]
    a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
        Matmul.multiplyTransposed(a.baseAddress!, b.baseAddress!, into: c.baseAddress!, m: 1, n: 1, k: 2, accumulate: true)
    } } }
    #expect(c == [21])
}
