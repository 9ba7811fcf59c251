import NunchakuCore
@testable import Quantizer

/// LAPACK when it loads. In CI (NUNCHAKU_CI set) a missing LAPACK is an error; elsewhere the LAPACK half of a test
/// is left out and only the Swift fallback runs.
func lapackIfAvailable() throws -> LAPACK? {
    do {
        return try LAPACK.load()
    } catch {
        if Environment.value("NUNCHAKU_CI") != nil { throw error }
        return nil
    }
}

/// Every dense linear algebra implementation available here: the Swift fallback, and LAPACK when it loads.
func linearAlgebraBackends() throws -> [any DenseLinearAlgebra] {
    var backends: [any DenseLinearAlgebra] = [SwiftLinearAlgebra()]
    if let lapack = try lapackIfAvailable() { backends.append(lapack) }
    return backends
}

/// A [rows, columns] column-major matrix of standard normal numbers.
func gaussianMatrix(rows: Int, columns: Int, seed: UInt64) -> ColumnMajorMatrix {
    var random = SeededGaussian(seed: seed)
    return ColumnMajorMatrix(rows: rows, columns: columns, elements: (0..<(rows * columns)).map { _ in random.next() })
}

/// `aᵀ · b` for column-major matrices.
func transposeTimes(_ a: ColumnMajorMatrix, _ b: ColumnMajorMatrix) -> ColumnMajorMatrix {
    var result = ColumnMajorMatrix(zerosRows: a.columns, columns: b.columns)
    for i in 0..<a.columns {
        for j in 0..<b.columns {
            var sum = 0.0
            for row in 0..<a.rows { sum += a[row, i] * b[row, j] }
            result[i, j] = sum
        }
    }
    return result
}

/// The largest |m[i][j] − I[i][j]|.
func distanceFromIdentity(_ m: ColumnMajorMatrix) -> Double {
    var worst = 0.0
    for i in 0..<m.rows {
        for j in 0..<m.columns { worst = max(worst, abs(m[i, j] - (i == j ? 1 : 0))) }
    }
    return worst
}

/// The largest elementwise |a − b|.
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
}

/// ‖a − b‖ / ‖b‖ in Double.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    relativeDifference(a, b)
}

/// The tanh approximation of GELU (what FLUX's MLP uses), for realistic post-GELU activations.
func gelu(_ x: Float) -> Float {
    let inner = 0.7978845608 * (Double(x) + 0.044715 * Double(x) * Double(x) * Double(x))
    let tanh = 1 - 2 / (1 + ElementaryFunctions.power(2.718281828459045, 2 * inner))
    return Float(0.5 * Double(x) * (1 + tanh))
}

/// A small synthetic W4A4 layer input (N = K = 128 by default) with outlier channels.
func syntheticInput(
    outFeatures: Int = 128, inFeatures: Int = 128, rows: Int = 32, kind: LinearInputKind = .general,
    withCalibration: Bool = true, seed: UInt64 = 7
) -> (input: W4A4LayerInput, layer: SyntheticLayer) {
    let layer = SyntheticLayer(SyntheticLayerSpecification(
        outFeatures: outFeatures, inFeatures: inFeatures, calibrationRows: rows, evaluationRows: rows, seed: seed))
    let values = kind == .postGELU ? layer.calibration.map { gelu($0 / 8) } : layer.calibration
    let input = W4A4LayerInput(
        name: "blocks.0.test", weight: layer.weight, outFeatures: outFeatures, inFeatures: inFeatures, bias: layer.bias,
        calibration: withCalibration ? CalibrationActivations(values: values, width: inFeatures) : nil, inputKind: kind)
    return (input, layer)
}
