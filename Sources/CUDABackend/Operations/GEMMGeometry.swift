import NunchakuCore

/// Which implementation computes a 16-bit linear layer `y = x·Wᵀ + bias`.
public enum GEMMImplementation: String, Sendable, CaseIterable, Codable {
    /// NVIDIA's cuBLASLt (optional library; its bias epilogue).
    case cublasLt
    /// Our own tensor-core kernel (`gemm_mma.cu`: mma.sync m16n8k16, float32 accumulation).
    case mma
}

/// The checked geometry of a linear layer on the GPU: `x [..., K]`, `weight [N, K]`, `bias [N]`, `y [..., N]`,
/// all bf16 or all f16, the leading dimensions of `x` flattened into M. No GPU needed, so the checks are testable.
public struct GEMMGeometry: Sendable, Equatable {
    /// Output tile of the own kernel, its threads and dynamic shared memory (three stages of 128×40 x and W rows).
    public static let tileM = 128
    public static let tileN = 128
    public static let threadsPerBlock = 256
    public static let sharedMemoryBytes = 3 * 2 * 128 * 40 * 2

    public let m: Int
    public let n: Int
    public let k: Int
    public let dtype: DType
    public let hasBias: Bool

    /// Validates the operands' shapes and dtypes.
    /// - Throws: `NunchakuError` naming the operand and what is wrong (K and N must be multiples of 8).
    public init(x: [Int], weight: [Int], bias: [Int]?, output: [Int], dtypes: (x: DType, weight: DType, bias: DType?, output: DType)) throws {
        let op = "linear"
        guard OperandCheck.activationDTypes.contains(dtypes.x) else {
            throw NunchakuError.dtypeMismatch(context: "\(op) x \(x)", expected: OperandCheck.activationDTypes, actual: dtypes.x)
        }
        for (name, dtype) in [("weight", dtypes.weight), ("bias", dtypes.bias ?? dtypes.x), ("output", dtypes.output)] where dtype != dtypes.x {
            throw NunchakuError.dtypeMismatch(context: "\(op) \(name)", expected: [dtypes.x], actual: dtype)
        }
        guard x.count >= 1, let k = x.last, weight.count == 2, weight[1] == k else {
            throw NunchakuError.shapeMismatch(context: "\(op) weight [N, K] for x \(x)", expected: [weight.first ?? 0, x.last ?? 0], actual: weight)
        }
        let n = weight[0]
        guard k > 0, k % 8 == 0, n > 0, n % 8 == 0 else {
            throw NunchakuError.unsupported(
                context: "\(op) x \(x) weight \(weight)", reason: "K = \(k) and N = \(n) must be positive multiples of 8 for the GEMM kernels")
        }
        if let bias, bias != [n] { throw NunchakuError.shapeMismatch(context: "\(op) bias", expected: [n], actual: bias) }
        let expectedOutput = Array(x.dropLast()) + [n]
        guard output == expectedOutput else {
            throw NunchakuError.shapeMismatch(context: "\(op) output", expected: expectedOutput, actual: output)
        }
        let m = x.dropLast().reduce(1, *)
        guard m <= Int(Int32.max), (m + Self.tileM - 1) / Self.tileM <= 65535, n <= Int(Int32.max), k <= Int(Int32.max) else {
            throw NunchakuError.invalidArgument(context: "\(op) x \(x) weight \(weight)", reason: "exceeds the kernel's grid limits")
        }
        self.m = m
        self.n = n
        self.k = k
        dtype = dtypes.x
        hasBias = bias != nil
    }

    /// The own kernel's name.
    public var kernelName: String { "nunchaku_gemm_\(dtype.rawValue)" }
    /// The own kernel's grid: N tiles × M tiles.
    public var grid: CUDADim3 { CUDADim3((n + Self.tileN - 1) / Self.tileN, (m + Self.tileM - 1) / Self.tileM) }
    /// Floating-point operations of one product (bias not counted).
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}
