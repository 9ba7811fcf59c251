import NunchakuCore

/// The operands of a problem's first call, which tuning times its candidates on: x, weight, bias, FP8 scale vectors.
typealias TuningOperands = (x: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?, scales: (weight: CUdeviceptr, x: CUdeviceptr)?)

extension CUBLASLtMatmul {
    /// How many of the heuristic's proposals tuning times.
    static let tuningCandidates = 8
    /// Timed launches per candidate, after one warm-up launch.
    static let tuningRepetitions = 3

    /// The fastest of `candidates` (heuristic results) for `plan` on `operands`, each launched once to warm up and
    /// then `tuningRepetitions` times between two events on `stream`, into a scratch output from the pool (also C
    /// when the problem accumulates: its values do not matter for the time). Candidates cuBLASLt refuses at launch
    /// are skipped. Waits for `stream` (so never called during a graph capture).
    func fastest(_ candidates: [[UInt8]], plan: Plan, key: CUBLASLtProblem, operands: TuningOperands, stream: CUDAStream) throws -> [UInt8] {
        let scratch = try context.memoryPool.allocate(byteCount: key.m * key.n * key.dtype.byteCount(forElements: 1), stream: stream)
        let (start, end) = (try context.makeEvent(), try context.makeEvent())
        var best: (milliseconds: Double, candidate: [UInt8])?
        for candidate in candidates {
            func launch() -> Bool {
                matmul(plan, algorithm: candidate, x: operands.x, weight: operands.weight, output: scratch.address,
                       accumulate: key.accumulate, stream: stream) == CUBLASLtConstant.success
            }
            guard launch() else { continue }
            try stream.record(start)
            guard (0..<Self.tuningRepetitions).allSatisfy({ _ in launch() }) else { continue }
            try stream.record(end)
            try end.synchronize()
            let milliseconds = try end.milliseconds(since: start)
            if milliseconds < best?.milliseconds ?? .infinity { best = (milliseconds, candidate) }
        }
        return best?.candidate ?? candidates[0]
    }
}
