import NunchakuCore

/// Single-precision matrix products on the CPU: the workhorse of the reference backend.
///
/// `C[m][n] = Σ_k A[m][k] · B[n][k]` with B given row-major as [N, K] — the layout of a linear layer's weight,
/// so `x · Wᵀ` needs no transpose. Sums accumulate in `Float` over K in order, 8 lanes at a time.
/// Rows and columns are split into 4×4 register tiles spread over all cores.
public enum Matmul {
    /// Writes (or adds, when `accumulate`) `A · Bᵀ` into `c` ([M, N], row-major, leading dimension N).
    public static func multiplyTransposed(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, accumulate: Bool = false
    ) {
        guard m > 0, n > 0 else { return }
        let rowTiles = (m + tile - 1) / tile
        let columnTiles = (n + tile - 1) / tile
        // Split columns into chunks too when there are few rows (GEMV-like shapes).
        let columnChunkTiles = max(1, min(columnTiles, (columnTiles * rowTiles) / max(1, 4 * Environment.processorCount) + 1))
        let columnChunks = (columnTiles + columnChunkTiles - 1) / columnChunkTiles
        parallelFor(rowTiles * columnChunks) { job in
            let rowStart = (job / columnChunks) * tile
            let firstColumnTile = (job % columnChunks) * columnChunkTiles
            for columnTile in firstColumnTile..<min(columnTiles, firstColumnTile + columnChunkTiles) {
                kernel4x4(a, b, c, rowStart: rowStart, columnStart: columnTile * tile, m: m, n: n, k: k, accumulate: accumulate)
            }
        }
    }

    /// `A · Bᵀ` for row-major arrays: `a` is [M, K], `b` is [N, K]; the result is [M, N].
    public static func multiplyTransposed(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        precondition(a.count == m * k && b.count == n * k, "matmul operand sizes do not match M=\(m) N=\(n) K=\(k)")
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    multiplyTransposed(a.baseAddress!, b.baseAddress!, into: c.baseAddress!, m: m, n: n, k: k)
                }
            }
        }
        return c
    }

    /// `A · B` for row-major arrays: `a` is [M, K], `b` is [K, N]; the result is [M, N].
    public static func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        multiplyTransposed(a, transpose(b, rows: k, columns: n), m: m, n: n, k: k)
    }

    /// The transpose of a row-major [rows, columns] matrix.
    public static func transpose(_ matrix: [Float], rows: Int, columns: Int) -> [Float] {
        precondition(matrix.count == rows * columns, "transpose size does not match \(rows)×\(columns)")
        var result = [Float](repeating: 0, count: matrix.count)
        let blockSize = 32
        for rowBlock in stride(from: 0, to: rows, by: blockSize) {
            for columnBlock in stride(from: 0, to: columns, by: blockSize) {
                for row in rowBlock..<min(rows, rowBlock + blockSize) {
                    for column in columnBlock..<min(columns, columnBlock + blockSize) {
                        result[column * rows + row] = matrix[row * columns + column]
                    }
                }
            }
        }
        return result
    }

    private static let tile = 4

    /// One output tile of up to 4×4: sixteen 8-lane accumulators kept in registers over K.
    @inline(__always)
    private static func kernel4x4(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        rowStart: Int, columnStart: Int, m: Int, n: Int, k: Int, accumulate: Bool
    ) {
        let rows = min(tile, m - rowStart), columns = min(tile, n - columnStart)
        // Out-of-range rows/columns read a valid row; their results are discarded.
        let a0 = a + rowStart * k, a1 = a + min(rowStart + 1, m - 1) * k
        let a2 = a + min(rowStart + 2, m - 1) * k, a3 = a + min(rowStart + 3, m - 1) * k
        let b0 = b + columnStart * k, b1 = b + min(columnStart + 1, n - 1) * k
        let b2 = b + min(columnStart + 2, n - 1) * k, b3 = b + min(columnStart + 3, n - 1) * k
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>(), c03 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>(), c13 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c22 = SIMD8<Float>(), c23 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>(), c32 = SIMD8<Float>(), c33 = SIMD8<Float>()
        let vectorEnd = k - k % 8
        var kk = 0
        while kk < vectorEnd {
            let x0 = load8(a0 + kk), x1 = load8(a1 + kk), x2 = load8(a2 + kk), x3 = load8(a3 + kk)
            let w0 = load8(b0 + kk), w1 = load8(b1 + kk), w2 = load8(b2 + kk), w3 = load8(b3 + kk)
            c00 += x0 * w0; c01 += x0 * w1; c02 += x0 * w2; c03 += x0 * w3
            c10 += x1 * w0; c11 += x1 * w1; c12 += x1 * w2; c13 += x1 * w3
            c20 += x2 * w0; c21 += x2 * w1; c22 += x2 * w2; c23 += x2 * w3
            c30 += x3 * w0; c31 += x3 * w1; c32 += x3 * w2; c33 += x3 * w3
            kk += 8
        }
        let sums = [
            [c00.sum(), c01.sum(), c02.sum(), c03.sum()], [c10.sum(), c11.sum(), c12.sum(), c13.sum()],
            [c20.sum(), c21.sum(), c22.sum(), c23.sum()], [c30.sum(), c31.sum(), c32.sum(), c33.sum()],
        ]
        let aRows = [a0, a1, a2, a3], bRows = [b0, b1, b2, b3]
        for row in 0..<rows {
            for column in 0..<columns {
                var sum = sums[row][column]
                for tail in vectorEnd..<k { sum += aRows[row][tail] * bRows[column][tail] }
                let out = c + (rowStart + row) * n + columnStart + column
                out.pointee = accumulate ? out.pointee + sum : sum
            }
        }
    }

    @inline(__always)
    private static func load8(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
    }
}
