import NunchakuCore
import Testing
@testable import Quantizer

@Suite struct DenseLinearAlgebraTests {
    @Test func qrGivesOrthonormalColumnsSpanningTheInput() throws {
        for backend in try linearAlgebraBackends() {
            let a = gaussianMatrix(rows: 40, columns: 12, seed: 1)
            let q = try backend.orthonormalBasis(a)
            #expect(q.rows == 40 && q.columns == 12)
            #expect(distanceFromIdentity(transposeTimes(q, q)) < 1e-12, "\(backend.name)")
            // Q·Qᵀ·A = A when Q spans A's columns.
            let coefficients = transposeTimes(q, a)
            let rebuilt = SwiftLinearAlgebra().multiply(q, coefficients)
            let worst = zip(rebuilt.elements, a.elements).map { abs($0 - $1) }.max() ?? 1
            #expect(worst < 1e-12, "\(backend.name)")
        }
    }

    @Test func qrOfARankDeficientMatrixStaysOrthonormal() throws {
        for backend in try linearAlgebraBackends() {
            var a = gaussianMatrix(rows: 20, columns: 6, seed: 2)
            for row in 0..<20 { a[row, 3] = 0 }
            let q = try backend.orthonormalBasis(a)
            #expect(distanceFromIdentity(transposeTimes(q, q)) < 1e-12, "\(backend.name)")
        }
    }

    @Test(arguments: [(30, 8), (9, 9)])
    func svdReconstructsTheMatrix(rows: Int, columns: Int) throws {
        let a = gaussianMatrix(rows: rows, columns: columns, seed: 3)
        var spectra: [[Double]] = []
        for backend in try linearAlgebraBackends() {
            let svd = try backend.thinSVD(a)
            #expect(distanceFromIdentity(transposeTimes(svd.u, svd.u)) < 1e-12, "\(backend.name)")
            #expect(distanceFromIdentity(transposeTimes(svd.v, svd.v)) < 1e-12, "\(backend.name)")
            #expect(zip(svd.singularValues, svd.singularValues.dropFirst()).allSatisfy { $0 >= $1 }, "\(backend.name)")
            var worst = 0.0
            for row in 0..<rows {
                for column in 0..<columns {
                    var sum = 0.0
                    for k in 0..<columns { sum += svd.u[row, k] * svd.singularValues[k] * svd.v[column, k] }
                    worst = max(worst, abs(sum - a[row, column]))
                }
            }
            #expect(worst < 1e-12, "\(backend.name)")
            spectra.append(svd.singularValues)
        }
        for spectrum in spectra.dropFirst() {
            #expect(zip(spectrum, spectra[0]).allSatisfy { abs($0 - $1) < 1e-11 * spectra[0][0] })
        }
    }

    @Test func wideOrNonFiniteMatricesAreRejected() throws {
        for backend in try linearAlgebraBackends() {
            #expect(throws: NunchakuError.self) { try backend.thinSVD(gaussianMatrix(rows: 3, columns: 5, seed: 4)) }
            var bad = gaussianMatrix(rows: 6, columns: 2, seed: 5)
            bad[1, 1] = .nan
            #expect(throws: NunchakuError.self) { try backend.orthonormalBasis(bad) }
        }
    }

    @Test func missingLibraryIsATypedError() {
        #expect(throws: NunchakuError.self) { try LAPACK.load(candidates: ["libdoes-not-exist-lapacke.so"]) }
    }
}
