import CPUBackend
import NunchakuCore

/// The leading `rank` singular triplets of a matrix: `A ≈ U · diag(s) · Vᵀ`.
public struct TruncatedSVD: Sendable {
    public let rows: Int
    public let columns: Int
    public let rank: Int
    /// Left singular vectors, [rows, rank] row-major.
    public let u: [Float]
    /// Descending.
    public let singularValues: [Float]
    /// Right singular vectors, [columns, rank] row-major.
    public let v: [Float]
}

/// Settings of the randomized SVD (Halko, Martinsson & Tropp, "Finding structure with randomness", 2011).
public struct RandomizedSVDOptions: Sendable, Equatable {
    /// Extra random directions beyond the rank; they make the captured subspace accurate.
    public var oversampling: Int
    /// Subspace iterations `(A·Aᵀ)^q`; each costs two products with A and sharpens a slowly decaying spectrum.
    public var powerIterations: Int
    /// Seed of the Gaussian test matrix.
    public var seed: UInt64

    public init(oversampling: Int = 16, powerIterations: Int = 4, seed: UInt64 = 0x5EED) {
        self.oversampling = oversampling
        self.powerIterations = powerIterations
        self.seed = seed
    }
}

/// Randomized range finder + subspace iteration + a small dense SVD.
///
/// The two big products per iteration (`A·Z` and `Aᵀ·Y`) run on CPUBackend's multithreaded fp32 GEMM; the
/// orthonormalizations and the final small SVD run in `Double` on `linearAlgebra` (LAPACK or the Swift fallback).
public enum RandomizedSVD {
    /// The leading `rank` singular triplets of `matrix` ([rows, columns] row-major).
    /// - Throws: `NunchakuError.invalidArgument` when the sizes are inconsistent or a factorization fails.
    public static func compute(
        _ matrix: [Float], rows: Int, columns: Int, rank: Int,
        options: RandomizedSVDOptions = RandomizedSVDOptions(),
        linearAlgebra: any DenseLinearAlgebra
    ) throws -> TruncatedSVD {
        guard matrix.count == rows * columns, rows > 0, columns > 0 else {
            throw NunchakuError.shapeMismatch(context: "randomized SVD", expected: [rows, columns], actual: [matrix.count])
        }
        guard rank > 0, rank <= min(rows, columns) else {
            throw NunchakuError.invalidArgument(
                context: "randomized SVD", reason: "rank \(rank) must be in 1...\(min(rows, columns)) for \(rows)×\(columns)")
        }
        let width = min(rank + max(0, options.oversampling), min(rows, columns))
        let transposed = Matmul.transpose(matrix, rows: rows, columns: columns)
        var random = SeededGaussian(seed: options.seed)
        // Basis vectors are kept as the rows of [width, length] arrays, so every product is an `A·Bᵀ`.
        var columnBasis = random.floats(width * columns)  // spans a random subspace of the row space
        var rowBasis = product(columnBasis, transposed: matrix, count: width, inner: columns, outer: rows)
        rowBasis = try orthonormalize(rowBasis, count: width, length: rows, linearAlgebra)
        for _ in 0..<max(0, options.powerIterations) {
            columnBasis = product(rowBasis, transposed: transposed, count: width, inner: rows, outer: columns)
            columnBasis = try orthonormalize(columnBasis, count: width, length: columns, linearAlgebra)
            rowBasis = product(columnBasis, transposed: matrix, count: width, inner: columns, outer: rows)
            rowBasis = try orthonormalize(rowBasis, count: width, length: rows, linearAlgebra)
        }
        // B = Qᵀ·A ([width, columns]); its transpose is tall: Bᵀ = U_b·Σ·V_bᵀ, so A ≈ Q·B = (Q·V_b)·Σ·U_bᵀ.
        let projected = product(rowBasis, transposed: transposed, count: width, inner: rows, outer: columns)
        let small = try linearAlgebra.thinSVD(
            ColumnMajorMatrix(rows: columns, columns: width, elements: projected.map(Double.init)))
        var u = [Float](repeating: 0, count: rows * rank)
        var v = [Float](repeating: 0, count: columns * rank)
        u.withUnsafeMutableBufferPointer { u in
            rowBasis.withUnsafeBufferPointer { basis in
                parallelFor(rows) { row in
                    for j in 0..<rank {
                        var sum = 0.0
                        for i in 0..<width { sum += Double(basis[i * rows + row]) * small.v[i, j] }
                        u[row * rank + j] = Float(sum)
                    }
                }
            }
        }
        for column in 0..<columns {
            for j in 0..<rank { v[column * rank + j] = Float(small.u[column, j]) }
        }
        return TruncatedSVD(
            rows: rows, columns: columns, rank: rank, u: u,
            singularValues: small.singularValues.prefix(rank).map(Float.init), v: v)
    }

    /// `basis · Mᵀ` where `basis` is [count, inner] and `transposedOperand` (M) is [outer, inner]: [count, outer].
    private static func product(
        _ basis: [Float], transposed transposedOperand: [Float], count: Int, inner: Int, outer: Int
    ) -> [Float] {
        Matmul.multiplyTransposed(basis, transposedOperand, m: count, n: outer, k: inner)
    }

    /// Orthonormal rows spanning the same space as the `count` rows (each `length` long) of `vectors`.
    private static func orthonormalize(
        _ vectors: [Float], count: Int, length: Int, _ linearAlgebra: any DenseLinearAlgebra
    ) throws -> [Float] {
        // Rows of a row-major [count, length] array are the columns of a column-major [length, count] matrix.
        let q = try linearAlgebra.orthonormalBasis(
            ColumnMajorMatrix(rows: length, columns: count, elements: vectors.map(Double.init)))
        return q.elements.map(Float.init)
    }
}
