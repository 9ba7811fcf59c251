import NunchakuCore

/// cuBLASLt behind `CUDAGEMM`: a handle, a workspace, and one plan (descriptors and the heuristic's algorithm) per
/// shape, made on first use.
///
/// Row-major `y[M, N] = x[M, K]·W[N, K]ᵀ` is the column-major product `yᵀ(N×M) = op(A)·B` with A = W read as a
/// K×N column-major matrix (ld K) and transposed, B = x read as K×M column-major (ld K), C = D = y as N×M (ld N);
/// the bias epilogue adds a vector of length N (the rows of that C) in the output's type.
final class CUBLASLtMatmul: @unchecked Sendable {
    static let workspaceBytes = 32 << 20

    let library: CUBLASLt
    private let api: CUBLASLtAPI
    private let context: CUDAContext
    private let handle: OpaquePointer
    private let workspace: DeviceBuffer
    private let lock = CUDALock()
    private var plans: [PlanKey: Plan] = [:]

    /// Loads cuBLASLt, creates a handle on `context`'s device and allocates the workspace.
    /// - Throws: `NunchakuError.libraryNotFound`/`.symbolNotFound`, `CUDAError.driverCall` naming the cuBLASLt call.
    init(context: CUDAContext) throws {
        library = try CUBLASLt()
        api = try library.matmulAPI()
        self.context = context
        try context.handle.makeCurrent()
        var handle: OpaquePointer?
        try Self.check(api, api.create(&handle), "cublasLtCreate")
        guard let handle else { throw NunchakuError.unsupported(context: "cublasLtCreate", reason: "returned no handle") }
        self.handle = handle
        workspace = try context.memoryPool.allocate(byteCount: Self.workspaceBytes, stream: context.defaultStream)
    }

    deinit {
        plans.removeAll()
        if (try? context.handle.makeCurrent()) != nil { _ = api.destroy(handle) }
    }

    /// Queues `output = x·weightᵀ (+ bias)` on `stream`.
    func run(_ geometry: GEMMGeometry, x: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?, output: CUdeviceptr,
             stream: CUDAStream) throws {
        try lock.withLock {
            try context.handle.makeCurrent()
            let key = PlanKey(m: geometry.m, n: geometry.n, k: geometry.k, dtype: geometry.dtype, hasBias: geometry.hasBias)
            let plan = try plans[key] ?? makePlan(key, bias: bias)
            plans[key] = plan
            if let bias {
                var pointer = UInt64(bias)
                try Self.check(api, api.matmulDescSetAttribute(plan.operation, CUBLASLtConstant.descriptorBiasPointer, &pointer, 8),
                               "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
            }
            var alpha: Float = 1
            var beta: Float = 0
            let status = plan.heuristic.withUnsafeBytes { algorithm in
                api.matmul(handle, plan.operation, &alpha, Self.raw(weight), plan.a, Self.raw(x), plan.b, &beta,
                           Self.raw(output), plan.c, UnsafeMutableRawPointer(bitPattern: UInt(output)), plan.c,
                           algorithm.baseAddress, UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)),
                           Self.workspaceBytes, stream.stream)
            }
            try Self.check(api, status, "cublasLtMatmul(M=\(geometry.m), N=\(geometry.n), K=\(geometry.k), \(geometry.dtype))")
        }
    }

    /// Descriptors for `key` and the first algorithm the heuristic proposes.
    private func makePlan(_ key: PlanKey, bias: CUdeviceptr?) throws -> Plan {
        let dataType = key.dtype == .bf16 ? CUBLASLtConstant.dataTypeBF16 : CUBLASLtConstant.dataTypeF16
        let plan = Plan(api: api)
        var operation: OpaquePointer?
        try Self.check(api, api.matmulDescCreate(&operation, CUBLASLtConstant.computeF32, CUBLASLtConstant.dataTypeF32),
                       "cublasLtMatmulDescCreate")
        plan.operation = operation
        var transposeA = CUBLASLtConstant.operationTranspose
        var transposeB = CUBLASLtConstant.operationNone
        var epilogue = key.hasBias ? CUBLASLtConstant.epilogueBias : CUBLASLtConstant.epilogueDefault
        try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorTransposeA, &transposeA, 4), "TRANSA")
        try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorTransposeB, &transposeB, 4), "TRANSB")
        try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorEpilogue, &epilogue, 4), "EPILOGUE")
        if let bias {
            var pointer = UInt64(bias)
            try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorBiasPointer, &pointer, 8), "BIAS_POINTER")
        }
        let (m, n, k) = (UInt64(key.m), UInt64(key.n), UInt64(key.k))
        var a: OpaquePointer?, b: OpaquePointer?, c: OpaquePointer?
        try Self.check(api, api.matrixLayoutCreate(&a, dataType, k, n, Int64(k)), "cublasLtMatrixLayoutCreate(A)")
        plan.a = a
        try Self.check(api, api.matrixLayoutCreate(&b, dataType, k, m, Int64(k)), "cublasLtMatrixLayoutCreate(B)")
        plan.b = b
        try Self.check(api, api.matrixLayoutCreate(&c, dataType, n, m, Int64(n)), "cublasLtMatrixLayoutCreate(C)")
        plan.c = c
        var preference: OpaquePointer?
        try Self.check(api, api.preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = api.preferenceDestroy(preference) }
        var workspaceLimit = UInt64(Self.workspaceBytes)
        try Self.check(api, api.preferenceSetAttribute(preference, CUBLASLtConstant.preferenceMaxWorkspaceBytes, &workspaceLimit, 8),
                       "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
        var found: Int32 = 0
        let status = plan.heuristic.withUnsafeMutableBytes { result in
            api.algoGetHeuristic(handle, operation, a, b, c, c, preference, 1, result.baseAddress, &found)
        }
        try Self.check(api, status, "cublasLtMatmulAlgoGetHeuristic(M=\(key.m), N=\(key.n), K=\(key.k), \(key.dtype))")
        let state = plan.heuristic.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: CUBLASLtConstant.heuristicResultStateOffset, as: Int32.self) }
        guard found > 0, state == CUBLASLtConstant.success else {
            throw NunchakuError.unsupported(
                context: "cuBLASLt M=\(key.m) N=\(key.n) K=\(key.k) \(key.dtype)",
                reason: found > 0 ? "the heuristic's algorithm has status \(state)" : "the heuristic proposed no algorithm")
        }
        return plan
    }

    private static func raw(_ address: CUdeviceptr) -> UnsafeRawPointer? { UnsafeRawPointer(bitPattern: UInt(address)) }

    private static func check(_ api: CUBLASLtAPI, _ status: Int32, _ call: String) throws {
        guard status != CUBLASLtConstant.success else { return }
        let name = api.getStatusString(status).map { String(cString: $0) } ?? "unknown status"
        throw CUDAError.driverCall(call: call, code: status, name: name, message: "cuBLASLt refused the call")
    }
}

private struct PlanKey: Hashable {
    let m: Int
    let n: Int
    let k: Int
    let dtype: DType
    let hasBias: Bool
}

/// One shape's cuBLASLt descriptors and chosen algorithm (the heuristic's result struct, whose first 64 bytes are
/// the algorithm); destroyed with the plan.
private final class Plan {
    let api: CUBLASLtAPI
    var operation: OpaquePointer?
    var a: OpaquePointer?
    var b: OpaquePointer?
    var c: OpaquePointer?
    var heuristic = [UInt8](repeating: 0, count: CUBLASLtConstant.heuristicResultBytes)

    init(api: CUBLASLtAPI) { self.api = api }

    deinit {
        for layout in [a, b, c] where layout != nil { _ = api.matrixLayoutDestroy(layout) }
        if operation != nil { _ = api.matmulDescDestroy(operation) }
    }
}
