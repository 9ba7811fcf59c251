import NunchakuCore

/// cuBLASLt behind `CUDAGEMM`: a handle, a workspace, and one plan (descriptors and an algorithm) per shape, made on
/// first use. The algorithm is the heuristic's first, or with `tunes` on, the fastest of its first `tuningCandidates`
/// proposals timed on the first call's operands (`CUBLASLtMatmul+Tuning.swift`).
///
/// Row-major `y[M, N] = x[M, K]·W[N, K]ᵀ` is the column-major product `yᵀ(N×M) = op(A)·B` with A = W read as a
/// K×N column-major matrix (ld K) and transposed, B = x read as K×M column-major (ld K), C = D = y as N×M (ld N);
/// the bias epilogue adds a vector of length N (the rows of that C) in the output's type.
final class CUBLASLtMatmul: @unchecked Sendable {
    static let workspaceBytes = 32 << 20

    let library: CUBLASLt
    let api: CUBLASLtAPI
    let context: CUDAContext
    private let handle: OpaquePointer
    private let workspace: DeviceBuffer
    private let lock = CUDALock()
    private var plans: [CUBLASLtProblem: Plan] = [:]
    private var tuning: Bool
    private var tuningRecords: [String] = []

    /// Whether plans made from now on time the heuristic's proposals and keep the fastest (plans already made keep
    /// their algorithm; none is timed during a graph capture). Off: the heuristic's first proposal.
    var tunes: Bool {
        get { lock.withLock { tuning } }
        set { lock.withLock { tuning = newValue } }
    }

    /// What tuning measured for each problem, in the order the plans were made: a line naming the problem, then one
    /// per candidate (its best round in milliseconds and `describe`'s configuration, `*` on the one kept).
    var tuningLog: [String] { lock.withLock { tuningRecords } }

    /// Appends one problem's tuning to `tuningLog` (called with the lock held, by `fastest`).
    func record(_ problem: CUBLASLtProblem, lines: [String]) {
        tuningRecords.append("\(problem): \(lines.count) candidate\(lines.count == 1 ? "" : "s, best of \(Self.tuningRounds) rounds of \(Self.tuningLaunchesPerRound) launches")")
        tuningRecords += lines
    }

    /// Loads cuBLASLt, creates a handle on `context`'s device and allocates the workspace.
    /// - Throws: `NunchakuError.libraryNotFound`/`.symbolNotFound`, `CUDAError.driverCall` naming the cuBLASLt call.
    init(context: CUDAContext, tunes: Bool) throws {
        tuning = tunes
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
        let problem = CUBLASLtProblem(m: geometry.m, n: geometry.n, k: geometry.k, dtype: geometry.dtype, hasBias: geometry.hasBias,
                                      gelu: false, fp8: nil, accumulate: false)
        try run(problem, x: x, weight: weight, bias: bias, scales: nil, output: output, stream: stream)
    }

    /// Queues `problem` on `stream`: for FP8 problems `scales` are the weight's per-row (length N) and x's per-row
    /// (length M) fp32 vectors, `output = (x·weightᵀ)·scaleₓ[m]·scale_w[n] (+ bias) (+ output when
    /// `problem.accumulate`)`.
    func run(_ problem: CUBLASLtProblem, x: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?,
             scales: (weight: CUdeviceptr, x: CUdeviceptr)?, output: CUdeviceptr, stream: CUDAStream) throws {
        try lock.withLock {
            try context.handle.makeCurrent()
            let plan = try plans[problem] ?? plan(for: problem, operands: (x, weight, bias, scales), stream: stream)
            plans[problem] = plan
            try Self.setPointers(api, plan.operation, bias: bias, scales: scales)
            try Self.check(api, matmul(plan, algorithm: plan.heuristic, x: x, weight: weight, output: output, accumulate: problem.accumulate,
                                       stream: stream), "cublasLtMatmul(\(problem))")
        }
    }

    /// Queues one `cublasLtMatmul` of `plan` with `algorithm` (a heuristic result) into `output` (also C, with
    /// beta 1 when `accumulate`); returns cuBLASLt's status.
    func matmul(_ plan: Plan, algorithm: [UInt8], x: CUdeviceptr, weight: CUdeviceptr, output: CUdeviceptr, accumulate: Bool,
                stream: CUDAStream) -> Int32 {
        var alpha: Float = 1
        var beta: Float = accumulate ? 1 : 0
        return algorithm.withUnsafeBytes { algorithm in
            api.matmul(handle, plan.operation, &alpha, Self.raw(weight), plan.a, Self.raw(x), plan.b, &beta,
                       Self.raw(output), plan.c, UnsafeMutableRawPointer(bitPattern: UInt(output)), plan.c,
                       algorithm.baseAddress, UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)),
                       Self.workspaceBytes, stream.stream)
        }
    }

    /// Sets the per-call device pointers of a descriptor: bias, FP8 scale vectors.
    private static func setPointers(_ api: CUBLASLtAPI, _ operation: OpaquePointer?, bias: CUdeviceptr?,
                                    scales: (weight: CUdeviceptr, x: CUdeviceptr)?) throws {
        var pointers: [(Int32, UInt64, String)] = []
        if let bias { pointers.append((CUBLASLtConstant.descriptorBiasPointer, UInt64(bias), "BIAS_POINTER")) }
        if let scales {
            pointers.append((CUBLASLtConstant.descriptorAScalePointer, UInt64(scales.weight), "A_SCALE_POINTER"))
            pointers.append((CUBLASLtConstant.descriptorBScalePointer, UInt64(scales.x), "B_SCALE_POINTER"))
        }
        for (attribute, address, name) in pointers {
            var pointer = address
            try check(api, api.matmulDescSetAttribute(operation, attribute, &pointer, 8), "cublasLtMatmulDescSetAttribute(\(name))")
        }
    }

    /// The plan of `problem`. Fast accumulation is only a speed preference: where cuBLASLt has no algorithm with it
    /// (cuBLASLt 13.1 on sm_90: M = 1 at K = 12288), the plan promotes the sums instead.
    /// - Throws: `NunchakuError.unsupported` naming the problem when cuBLASLt has no algorithm for it.
    private func plan(for problem: CUBLASLtProblem, operands: TuningOperands, stream: CUDAStream) throws -> Plan {
        if let plan = try makePlan(problem, operands: operands, stream: stream) { return plan }
        if problem.fp8?.fastAccumulation == true {
            let promoted = CUBLASLtProblem(m: problem.m, n: problem.n, k: problem.k, dtype: problem.dtype, hasBias: problem.hasBias,
                                           gelu: problem.gelu, fp8: .init(fastAccumulation: false), accumulate: problem.accumulate)
            if let plan = try makePlan(promoted, operands: operands, stream: stream) { return plan }
        }
        throw NunchakuError.unsupported(context: "cuBLASLt \(problem)", reason: "cuBLASLt has no usable algorithm for it")
    }

    /// Descriptors for `key` and its algorithm: the heuristic's first proposal, or with `tunes` (outside a graph
    /// capture) the fastest of its first `tuningCandidates` on `operands`; nil when cuBLASLt has no usable algorithm.
    private func makePlan(_ key: CUBLASLtProblem, operands: TuningOperands, stream: CUDAStream) throws -> Plan? {
        let (bias, scales) = (operands.bias, operands.scales)
        let outputType = key.dtype == .bf16 ? CUBLASLtConstant.dataTypeBF16 : CUBLASLtConstant.dataTypeF16
        let operandType = key.fp8 == nil ? outputType : CUBLASLtConstant.dataTypeE4M3
        let plan = Plan(api: api)
        var operation: OpaquePointer?
        try Self.check(api, api.matmulDescCreate(&operation, CUBLASLtConstant.computeF32, CUBLASLtConstant.dataTypeF32),
                       "cublasLtMatmulDescCreate")
        plan.operation = operation
        var transposeA = CUBLASLtConstant.operationTranspose
        var transposeB = CUBLASLtConstant.operationNone
        var epilogue = switch (key.gelu, key.hasBias) {
        case (true, true): CUBLASLtConstant.epilogueGELUBias
        case (true, false): CUBLASLtConstant.epilogueGELU
        case (false, true): CUBLASLtConstant.epilogueBias
        case (false, false): CUBLASLtConstant.epilogueDefault
        }
        try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorTransposeA, &transposeA, 4), "TRANSA")
        try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorTransposeB, &transposeB, 4), "TRANSB")
        try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorEpilogue, &epilogue, 4), "EPILOGUE")
        if let fp8 = key.fp8 {
            var mode = CUBLASLtConstant.scaleModeOuterVector
            var fast: Int8 = fp8.fastAccumulation ? 1 : 0
            try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorAScaleMode, &mode, 4), "A_SCALE_MODE")
            try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorBScaleMode, &mode, 4), "B_SCALE_MODE")
            try Self.check(api, api.matmulDescSetAttribute(operation, CUBLASLtConstant.descriptorFastAccumulation, &fast, 1), "FAST_ACCUM")
        }
        // The heuristic wants the pointers of the first call (it refuses FP8 outer-vector scaling without them).
        try Self.setPointers(api, operation, bias: bias, scales: scales)
        let (m, n, k) = (UInt64(key.m), UInt64(key.n), UInt64(key.k))
        var a: OpaquePointer?, b: OpaquePointer?, c: OpaquePointer?
        try Self.check(api, api.matrixLayoutCreate(&a, operandType, k, n, Int64(k)), "cublasLtMatrixLayoutCreate(A)")
        plan.a = a
        try Self.check(api, api.matrixLayoutCreate(&b, operandType, k, m, Int64(k)), "cublasLtMatrixLayoutCreate(B)")
        plan.b = b
        try Self.check(api, api.matrixLayoutCreate(&c, outputType, n, m, Int64(n)), "cublasLtMatrixLayoutCreate(C)")
        plan.c = c
        var preference: OpaquePointer?
        try Self.check(api, api.preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = api.preferenceDestroy(preference) }
        var workspaceLimit = UInt64(Self.workspaceBytes)
        try Self.check(api, api.preferenceSetAttribute(preference, CUBLASLtConstant.preferenceMaxWorkspaceBytes, &workspaceLimit, 8),
                       "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
        let tunes = tuning && !context.memoryPool.isCapturing
        let requested = tunes ? Self.tuningCandidates : 1
        var results = [UInt8](repeating: 0, count: requested * CUBLASLtConstant.heuristicResultBytes)
        var found: Int32 = 0
        let status = results.withUnsafeMutableBytes { result in
            api.algoGetHeuristic(handle, operation, a, b, c, c, preference, Int32(requested), result.baseAddress, &found)
        }
        if status == CUBLASLtConstant.notSupported { return nil }
        try Self.check(api, status, "cublasLtMatmulAlgoGetHeuristic(\(key))")
        let usable = (0..<Int(found)).map { Array(results[($0 * CUBLASLtConstant.heuristicResultBytes)...].prefix(CUBLASLtConstant.heuristicResultBytes)) }
            .filter { result in
                result.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: CUBLASLtConstant.heuristicResultStateOffset, as: Int32.self) }
                    == CUBLASLtConstant.success
            }
        guard let first = usable.first else { return nil }
        if tunes && usable.count == 1 { record(key, lines: ["* (not timed: cuBLASLt proposed only this one) \(describe(first))"]) }
        plan.heuristic = usable.count > 1 ? try fastest(usable, plan: plan, key: key, operands: operands, stream: stream) : first
        return plan
    }

    private static func raw(_ address: CUdeviceptr) -> UnsafeRawPointer? { UnsafeRawPointer(bitPattern: UInt(address)) }

    static func check(_ api: CUBLASLtAPI, _ status: Int32, _ call: String) throws {
        guard status != CUBLASLtConstant.success else { return }
        let name = api.getStatusString(status).map { String(cString: $0) } ?? "unknown status"
        throw CUDAError.driverCall(call: call, code: status, name: name, message: "cuBLASLt refused the call")
    }
}

/// One cuBLASLt problem: `y[M, N] = x[M, K]·W[N, K]ᵀ (+ bias)`, plus y's previous values when `accumulate` is set,
/// then GELU when `gelu` is set (cuBLASLt's GELU epilogue, on the fp32 result before the output rounding); output
/// (and bias) in `dtype`; operands in `dtype` too, or float8 e4m3 with outer-vector fp32 scales when `fp8` is set.
struct CUBLASLtProblem: Hashable, CustomStringConvertible {
    /// The FP8 options of a problem.
    struct FP8: Hashable {
        /// cuBLASLt's FAST_ACCUM: partial sums are not promoted to fp32 registers along K (faster, less exact).
        let fastAccumulation: Bool
    }

    let m: Int
    let n: Int
    let k: Int
    let dtype: DType
    let hasBias: Bool
    let gelu: Bool
    let fp8: FP8?
    /// Adds the output's previous values (C = D, beta = 1) before the one rounding.
    let accumulate: Bool

    var description: String {
        "M=\(m), N=\(n), K=\(k), \(fp8 == nil ? "" : "e4m3→")\(dtype)\(hasBias ? " + bias" : "")\(gelu ? ", GELU" : "")\(fp8?.fastAccumulation == true ? ", fast accumulation" : "")\(accumulate ? ", + C" : "")"
    }
}

/// One shape's cuBLASLt descriptors and chosen algorithm (the heuristic's result struct, whose first 64 bytes are
/// the algorithm); destroyed with the plan.
final class Plan {
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
