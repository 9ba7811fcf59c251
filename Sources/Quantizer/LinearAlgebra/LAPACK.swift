import NunchakuCore

/// LAPACK reached through `dlopen` (Debian's `liblapacke.so.3`, backed by OpenBLAS when `libopenblas0` is installed):
/// `dgeqrf` + `dorgqr` for QR, `dgesdd` for the SVD. The package builds and runs without it.
public struct LAPACK: DenseLinearAlgebra {
    /// The library names tried, in order.
    public static let candidates = [
        "liblapacke.so.3", "liblapacke.so", "libopenblas.so.0", "libopenblas.so",
        "liblapacke.dylib", "libopenblas.dylib", "/opt/homebrew/opt/lapack/lib/liblapacke.dylib",
    ]

    // LAPACKE entry points (LP64: lapack_int is Int32; layout 102 = column-major).
    private typealias Geqrf = @convention(c) (
        Int32, Int32, Int32, UnsafeMutablePointer<Double>, Int32, UnsafeMutablePointer<Double>
    ) -> Int32
    private typealias Orgqr = @convention(c) (
        Int32, Int32, Int32, Int32, UnsafeMutablePointer<Double>, Int32, UnsafePointer<Double>
    ) -> Int32
    private typealias Gesdd = @convention(c) (
        Int32, CChar, Int32, Int32, UnsafeMutablePointer<Double>, Int32, UnsafeMutablePointer<Double>,
        UnsafeMutablePointer<Double>, Int32, UnsafeMutablePointer<Double>, Int32
    ) -> Int32
    private static let columnMajor: Int32 = 102

    private let library: DynamicLibrary
    private let geqrf: Geqrf
    private let orgqr: Orgqr
    private let gesdd: Gesdd

    public var name: String { "LAPACK (\(library.name))" }

    /// Opens the first loadable library of `candidates` that exports the three LAPACKE functions.
    /// - Throws: `NunchakuError.libraryNotFound` or `.symbolNotFound`.
    public static func load(candidates: [String] = LAPACK.candidates) throws -> LAPACK {
        let library = try DynamicLibrary(firstOf: candidates)
        return LAPACK(
            library: library,
            geqrf: try library.function("LAPACKE_dgeqrf"),
            orgqr: try library.function("LAPACKE_dorgqr"),
            gesdd: try library.function("LAPACKE_dgesdd"))
    }

    private init(library: DynamicLibrary, geqrf: Geqrf, orgqr: Orgqr, gesdd: Gesdd) {
        self.library = library
        self.geqrf = geqrf
        self.orgqr = orgqr
        self.gesdd = gesdd
    }

    public func orthonormalBasis(_ a: ColumnMajorMatrix) throws -> ColumnMajorMatrix {
        try requireTall(a, "QR")
        let (m, n) = try dimensions(a)
        var elements = a.elements
        var tau = [Double](repeating: 0, count: a.columns)
        let info = elements.withUnsafeMutableBufferPointer { elements in
            tau.withUnsafeMutableBufferPointer { tau in
                let factored = geqrf(Self.columnMajor, m, n, elements.baseAddress!, m, tau.baseAddress!)
                guard factored == 0 else { return factored }
                return orgqr(Self.columnMajor, m, n, n, elements.baseAddress!, m, tau.baseAddress!)
            }
        }
        try check(info, "LAPACKE_dgeqrf/dorgqr")
        return ColumnMajorMatrix(rows: a.rows, columns: a.columns, elements: elements)
    }

    public func thinSVD(_ a: ColumnMajorMatrix) throws -> ThinSVD {
        try requireTall(a, "SVD")
        let (m, n) = try dimensions(a)
        var elements = a.elements
        var singularValues = [Double](repeating: 0, count: a.columns)
        var u = [Double](repeating: 0, count: a.rows * a.columns)
        var vt = [Double](repeating: 0, count: a.columns * a.columns)
        let info = elements.withUnsafeMutableBufferPointer { elements in
            singularValues.withUnsafeMutableBufferPointer { s in
                u.withUnsafeMutableBufferPointer { u in
                    vt.withUnsafeMutableBufferPointer { vt in
                        gesdd(Self.columnMajor, CChar(UInt8(ascii: "S")), m, n, elements.baseAddress!, m,
                              s.baseAddress!, u.baseAddress!, m, vt.baseAddress!, n)
                    }
                }
            }
        }
        try check(info, "LAPACKE_dgesdd")
        var v = ColumnMajorMatrix(zerosRows: a.columns, columns: a.columns)
        for row in 0..<a.columns {
            for column in 0..<a.columns { v[row, column] = vt[row * a.columns + column] }  // v = vtᵀ
        }
        return ThinSVD(u: ColumnMajorMatrix(rows: a.rows, columns: a.columns, elements: u),
                       singularValues: singularValues, v: v)
    }

    private func dimensions(_ a: ColumnMajorMatrix) throws -> (Int32, Int32) {
        guard let m = Int32(exactly: a.rows), let n = Int32(exactly: a.columns) else {
            throw NunchakuError.invalidArgument(context: name, reason: "matrix \(a.rows)×\(a.columns) exceeds 32-bit LAPACK")
        }
        return (m, n)
    }

    private func check(_ info: Int32, _ function: String) throws {
        guard info == 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(library.name) \(function)",
                reason: info < 0 ? "argument \(-info) was rejected" : "did not converge (info \(info))")
        }
    }
}
