/// Dense factorizations in plain Swift, used when LAPACK cannot be loaded: Householder QR and
/// one-sided (Hestenes) Jacobi SVD, both in `Double`.
///
/// Fine for the small matrices of the randomized SVD (a few hundred columns at most); not meant for big ones.
public struct SwiftLinearAlgebra: DenseLinearAlgebra {
    public init() {}

    public var name: String { "Swift (Householder QR, Jacobi SVD)" }

    public func orthonormalBasis(_ a: ColumnMajorMatrix) throws -> ColumnMajorMatrix {
        try requireTall(a, "QR")
        return HouseholderQR(a).thinQ()
    }

    public func thinSVD(_ a: ColumnMajorMatrix) throws -> ThinSVD {
        try requireTall(a, "SVD")
        guard a.rows > a.columns else { return JacobiSVD.decompose(a) }
        // Tall: A = Q·R, R = U_r·Σ·Vᵀ, so A = (Q·U_r)·Σ·Vᵀ; Jacobi then works on the small square R.
        let qr = HouseholderQR(a)
        var small = JacobiSVD.decompose(qr.r())
        small.u = multiply(qr.thinQ(), small.u)
        return small
    }

    /// `a · b` for column-major matrices.
    func multiply(_ a: ColumnMajorMatrix, _ b: ColumnMajorMatrix) -> ColumnMajorMatrix {
        var result = ColumnMajorMatrix(zerosRows: a.rows, columns: b.columns)
        for column in 0..<b.columns {
            for inner in 0..<a.columns {
                let factor = b[inner, column]
                if factor == 0 { continue }
                let aBase = inner * a.rows, resultBase = column * a.rows
                for row in 0..<a.rows { result.elements[resultBase + row] += a.elements[aBase + row] * factor }
            }
        }
        return result
    }
}

/// A Householder QR factorization `A = Q·R` of a matrix with rows ≥ columns.
struct HouseholderQR {
    /// The reflected matrix: R on and above the diagonal.
    private var reduced: ColumnMajorMatrix
    /// Unit Householder vectors; vector j acts on rows j..<rows (stored in full length, zeros above j).
    private var reflectors: [[Double]]

    init(_ a: ColumnMajorMatrix) {
        reduced = a
        reflectors = []
        let rows = a.rows
        for column in 0..<a.columns {
            var vector = [Double](repeating: 0, count: rows)
            var norm = 0.0
            for row in column..<rows {
                vector[row] = reduced[row, column]
                norm += vector[row] * vector[row]
            }
            norm = norm.squareRoot()
            if norm == 0 {
                reflectors.append(vector)  // zero vector: the identity reflection
                continue
            }
            let alpha = vector[column] >= 0 ? -norm : norm
            vector[column] -= alpha
            var vectorNorm = 0.0
            for row in column..<rows { vectorNorm += vector[row] * vector[row] }
            vectorNorm = vectorNorm.squareRoot()
            for row in column..<rows { vector[row] /= vectorNorm }
            reflect(&reduced, by: vector, from: column, firstColumn: column)
            reflectors.append(vector)
        }
    }

    /// The upper-triangular factor R, [columns, columns].
    func r() -> ColumnMajorMatrix {
        var result = ColumnMajorMatrix(zerosRows: reduced.columns, columns: reduced.columns)
        for column in 0..<reduced.columns {
            for row in 0...column { result[row, column] = reduced[row, column] }
        }
        return result
    }

    /// The thin orthonormal factor Q, [rows, columns].
    func thinQ() -> ColumnMajorMatrix {
        var q = ColumnMajorMatrix.identity(rows: reduced.rows, columns: reduced.columns)
        for column in stride(from: reflectors.count - 1, through: 0, by: -1) {
            reflect(&q, by: reflectors[column], from: column, firstColumn: 0)
        }
        return q
    }

    /// Applies `I − 2·v·vᵀ` (v non-zero only in rows `from...`) to columns `firstColumn...` of `matrix`.
    private func reflect(_ matrix: inout ColumnMajorMatrix, by vector: [Double], from start: Int, firstColumn: Int) {
        let rows = matrix.rows
        matrix.elements.withUnsafeMutableBufferPointer { elements in
            for column in firstColumn..<matrix.columns {
                let base = column * rows
                var dot = 0.0
                for row in start..<rows { dot += vector[row] * elements[base + row] }
                if dot == 0 { continue }
                let factor = 2 * dot
                for row in start..<rows { elements[base + row] -= factor * vector[row] }
            }
        }
    }
}

/// One-sided Jacobi SVD: rotates pairs of columns until all are orthogonal; then the column norms are the
/// singular values. Accurate to working precision, and simple enough to check by reading.
enum JacobiSVD {
    static func decompose(_ a: ColumnMajorMatrix, maximumSweeps: Int = 60) -> ThinSVD {
        let rows = a.rows, columns = a.columns
        var work = a
        var v = ColumnMajorMatrix.identity(rows: columns, columns: columns)
        let tolerance = Double.ulpOfOne * Double(rows)
        work.elements.withUnsafeMutableBufferPointer { work in
            v.elements.withUnsafeMutableBufferPointer { v in
                for _ in 0..<maximumSweeps {
                    var rotated = false
                    for p in 0..<columns {
                        for q in (p + 1)..<columns {
                            let columnP = work.baseAddress! + p * rows, columnQ = work.baseAddress! + q * rows
                            var alpha = 0.0, beta = 0.0, gamma = 0.0
                            for row in 0..<rows {
                                let x = columnP[row], y = columnQ[row]
                                alpha += x * x
                                beta += y * y
                                gamma += x * y
                            }
                            guard gamma != 0, abs(gamma) > tolerance * (alpha * beta).squareRoot() else { continue }
                            rotated = true
                            let zeta = (beta - alpha) / (2 * gamma)
                            let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                            let c = 1 / (1 + t * t).squareRoot(), s = c * t
                            rotate(columnP, columnQ, count: rows, c, s)
                            rotate(v.baseAddress! + p * columns, v.baseAddress! + q * columns, count: columns, c, s)
                        }
                    }
                    if !rotated { break }
                }
            }
        }
        var norms = (0..<columns).map { column in
            (0..<rows).reduce(0.0) { $0 + work[$1, column] * work[$1, column] }.squareRoot()
        }
        let order = (0..<columns).sorted { norms[$0] > norms[$1] }
        var u = ColumnMajorMatrix(zerosRows: rows, columns: columns)
        var sortedV = ColumnMajorMatrix(zerosRows: columns, columns: columns)
        for (target, source) in order.enumerated() {
            let norm = norms[source]
            for row in 0..<rows { u[row, target] = norm > 0 ? work[row, source] / norm : 0 }
            for row in 0..<columns { sortedV[row, target] = v[row, source] }
        }
        norms = order.map { norms[$0] }
        return ThinSVD(u: u, singularValues: norms, v: sortedV)
    }

    /// Columns (p, q) ← (c·p − s·q, s·p + c·q).
    private static func rotate(
        _ p: UnsafeMutablePointer<Double>, _ q: UnsafeMutablePointer<Double>, count: Int, _ c: Double, _ s: Double
    ) {
        for row in 0..<count {
            let x = p[row], y = q[row]
            p[row] = c * x - s * y
            q[row] = s * x + c * y
        }
    }
}
