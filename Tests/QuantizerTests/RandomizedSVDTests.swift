import NunchakuCore
import Testing
@testable import Quantizer

@Suite struct RandomizedSVDTests {
    /// A = U·diag(s)·Vᵀ with random orthonormal U [rows, 24], V [columns, 24] and s = 50·0.8^i.
    private static func knownSpectrumMatrix(rows: Int, columns: Int) throws -> (matrix: [Float], s: [Double], u: ColumnMajorMatrix, v: ColumnMajorMatrix) {
        let count = 24
        let swift = SwiftLinearAlgebra()
        let u = try swift.orthonormalBasis(gaussianMatrix(rows: rows, columns: count, seed: 11))
        let v = try swift.orthonormalBasis(gaussianMatrix(rows: columns, columns: count, seed: 12))
        let s = (0..<count).map { 50 * ElementaryFunctions.power(0.8, Double($0)) }
        var matrix = [Float](repeating: 0, count: rows * columns)
        for row in 0..<rows {
            for column in 0..<columns {
                var sum = 0.0
                for i in 0..<count { sum += u[row, i] * s[i] * v[column, i] }
                matrix[row * columns + column] = Float(sum)
            }
        }
        return (matrix, s, u, v)
    }

    @Test func recoversKnownSingularValuesAndVectors() throws {
        let rows = 256, columns = 192, rank = 16
        let (matrix, s, u, v) = try Self.knownSpectrumMatrix(rows: rows, columns: columns)
        for backend in try linearAlgebraBackends() {
            let svd = try RandomizedSVD.compute(matrix, rows: rows, columns: columns, rank: rank, linearAlgebra: backend)
            #expect(svd.u.count == rows * rank && svd.v.count == columns * rank && svd.singularValues.count == rank)
            for i in 0..<rank {
                #expect(abs(Double(svd.singularValues[i]) - s[i]) / s[i] < 1e-4, "\(backend.name) σ\(i)")
                var uDot = 0.0, vDot = 0.0
                for row in 0..<rows { uDot += Double(svd.u[row * rank + i]) * u[row, i] }
                for column in 0..<columns { vDot += Double(svd.v[column * rank + i]) * v[column, i] }
                #expect(abs(abs(uDot) - 1) < 1e-4 && abs(abs(vDot) - 1) < 1e-4, "\(backend.name) vector \(i)")
                #expect(uDot * vDot > 0, "\(backend.name) vector \(i): u and v signs must agree")
            }
        }
    }

    @Test func matchesNumpyOnTheFormulaMatrix() throws {
        let rows = NumpySVDReference.rows, columns = NumpySVDReference.columns
        var matrix = [Float](repeating: 0, count: rows * columns)
        var dense = ColumnMajorMatrix(zerosRows: rows, columns: columns)
        let weights = (0..<NumpySVDReference.terms).map { ElementaryFunctions.power(0.85, Double($0)) }
        for i in 0..<rows {
            for j in 0..<columns {
                var sum = 0.0
                for t in 0..<NumpySVDReference.terms {
                    let (t1, i1, j1) = (Double(t + 1), Double(i + 1), Double(j + 1))
                    sum += weights[t]
                        * ElementaryFunctions.sine(0.37 * t1 * i1 + 0.1 * Double(t))
                        * ElementaryFunctions.cosine(0.23 * t1 * j1 + 0.2 * Double(t))
                }
                matrix[i * columns + j] = Float(sum)
                dense[i, j] = sum
            }
        }
        // The full dense SVD in Double agrees with numpy to rounding; columns ≥ rows, so decompose Aᵀ.
        var transposed = ColumnMajorMatrix(zerosRows: columns, columns: rows)
        for i in 0..<rows { for j in 0..<columns { transposed[j, i] = dense[i, j] } }
        for backend in try linearAlgebraBackends() {
            let exact = try backend.thinSVD(transposed).singularValues
            for (index, reference) in NumpySVDReference.singularValues.enumerated() {
                #expect(abs(exact[index] - reference) / reference < 1e-10, "\(backend.name) dense σ\(index)")
            }
            // The randomized SVD (fp32 products) gets the leading 16 to 1e-4.
            let svd = try RandomizedSVD.compute(matrix, rows: rows, columns: columns, rank: 16, linearAlgebra: backend)
            for index in 0..<16 {
                let reference = NumpySVDReference.singularValues[index]
                #expect(abs(Double(svd.singularValues[index]) - reference) / reference < 1e-4, "\(backend.name) σ\(index)")
            }
        }
    }

    @Test func badArgumentsThrow() throws {
        let backend = SwiftLinearAlgebra()
        let matrix = [Float](repeating: 1, count: 12)
        #expect(throws: NunchakuError.self) { try RandomizedSVD.compute(matrix, rows: 3, columns: 4, rank: 4, linearAlgebra: backend) }
        #expect(throws: NunchakuError.self) { try RandomizedSVD.compute(matrix, rows: 3, columns: 4, rank: 0, linearAlgebra: backend) }
        #expect(throws: NunchakuError.self) { try RandomizedSVD.compute(matrix, rows: 5, columns: 4, rank: 2, linearAlgebra: backend) }
    }

    @Test func sameSeedSameResult() throws {
        let (matrix, _, _, _) = try Self.knownSpectrumMatrix(rows: 64, columns: 48)
        let backend = SwiftLinearAlgebra()
        let first = try RandomizedSVD.compute(matrix, rows: 64, columns: 48, rank: 8, linearAlgebra: backend)
        let second = try RandomizedSVD.compute(matrix, rows: 64, columns: 48, rank: 8, linearAlgebra: backend)
        #expect(first.u == second.u && first.v == second.v && first.singularValues == second.singularValues)
    }
}
