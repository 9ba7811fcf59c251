import NunchakuCore

/// A small dense matrix of `Double`s stored column by column (LAPACK's layout).
public struct ColumnMajorMatrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    /// `elements[column * rows + row]`.
    public var elements: [Double]

    public init(rows: Int, columns: Int, elements: [Double]) {
        precondition(elements.count == rows * columns, "matrix storage does not match \(rows)×\(columns)")
        self.rows = rows
        self.columns = columns
        self.elements = elements
    }

    /// The zero matrix of the given size.
    public init(zerosRows rows: Int, columns: Int) {
        self.init(rows: rows, columns: columns, elements: [Double](repeating: 0, count: rows * columns))
    }

    /// The identity's first `columns` columns, `rows` tall.
    public static func identity(rows: Int, columns: Int) -> ColumnMajorMatrix {
        var matrix = ColumnMajorMatrix(zerosRows: rows, columns: columns)
        for index in 0..<min(rows, columns) { matrix[index, index] = 1 }
        return matrix
    }

    public subscript(row: Int, column: Int) -> Double {
        get { elements[column * rows + row] }
        set { elements[column * rows + row] = newValue }
    }
}

/// A thin singular value decomposition `A = U · diag(s) · Vᵀ` of a matrix with at least as many rows as columns.
public struct ThinSVD: Sendable {
    /// [rows, columns]: orthonormal columns, one per singular value.
    public var u: ColumnMajorMatrix
    /// Descending, non-negative.
    public var singularValues: [Double]
    /// [columns, columns]: orthonormal columns (right singular vectors).
    public var v: ColumnMajorMatrix
}

/// The dense factorizations the randomized SVD needs on its small matrices: LAPACK when it can be loaded,
/// otherwise the pure-Swift fallback.
public protocol DenseLinearAlgebra: Sendable {
    /// A short name for reports ("LAPACK (liblapacke.so.3)", "Swift").
    var name: String { get }
    /// The Q factor of a thin QR decomposition of `a` (rows ≥ columns): orthonormal columns spanning `a`'s columns.
    func orthonormalBasis(_ a: ColumnMajorMatrix) throws -> ColumnMajorMatrix
    /// The thin SVD of `a` (rows ≥ columns).
    func thinSVD(_ a: ColumnMajorMatrix) throws -> ThinSVD
}

/// Picks the dense linear algebra implementation.
public enum DenseLinearAlgebraProvider {
    /// LAPACK through dlopen when available, otherwise the pure-Swift implementation.
    public static func preferred() -> any DenseLinearAlgebra {
        (try? LAPACK.load()) ?? SwiftLinearAlgebra()
    }
}

extension DenseLinearAlgebra {
    func requireTall(_ a: ColumnMajorMatrix, _ operation: String) throws {
        guard a.rows >= a.columns, a.columns > 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(name) \(operation)",
                reason: "needs a non-empty matrix with rows ≥ columns, got \(a.rows)×\(a.columns)")
        }
        guard a.elements.allSatisfy(\.isFinite) else {
            throw NunchakuError.invalidArgument(context: "\(name) \(operation)", reason: "matrix contains NaN or Inf")
        }
    }
}
