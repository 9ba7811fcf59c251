import NunchakuCore
import SVDQuant

extension AWQW4A16Weights {
    /// The dequantized weight [N, K] row-major, natural channel order: `q · wscales[k/64][n] + wzeros[k/64][n]`
    /// in fp32, without the 16-bit rounding the kernel applies to each dequantized weight (`hfma`).
    func dequantizedWeight() -> [Float] {
        let n = outFeatures, k = inFeatures
        let scales = canonical.wscales.floats(), zeros = canonical.wzeros.floats()
        var result = [Float](repeating: 0, count: n * k)
        canonical.qweight.withUnsafeBytes { codes in
            for row in 0..<n {
                for column in 0..<k {
                    let byte = codes[(row * k + column) / 2]
                    let code = Float(column % 2 == 0 ? byte & 0xF : byte >> 4)
                    let group = (column / groupSize) * n + row
                    result[row * k + column] = code * scales[group] + zeros[group]
                }
            }
        }
        return result
    }
}
