import NunchakuCore

/// The operands of a problem's first call, which tuning times its candidates on: x, weight, bias, FP8 scale vectors.
typealias TuningOperands = (x: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?, scales: (weight: CUdeviceptr, x: CUdeviceptr)?)

extension CUBLASLtMatmul {
    /// How many of the heuristic's proposals tuning times.
    static let tuningCandidates = 8
    /// Rounds of timing: each round times every candidate once, so a clock that drifts during tuning (a GPU warming up
    /// from idle) slows every candidate alike instead of the first ones timed.
    static let tuningRounds = 3
    /// Launches per candidate and round, between two events.
    static let tuningLaunchesPerRound = 2

    /// The fastest of `candidates` (heuristic results) for `plan` on `operands`: each launched once to warm up, then
    /// timed round robin, `tuningRounds` rounds of `tuningLaunchesPerRound` launches between two events on `stream`,
    /// and ranked by its fastest round. The output is a scratch from the pool (also C when the problem accumulates: its
    /// values do not matter for the time). Candidates cuBLASLt refuses at launch are skipped. Waits for `stream` (so
    /// never called during a graph capture).
    func fastest(_ candidates: [[UInt8]], plan: Plan, key: CUBLASLtProblem, operands: TuningOperands, stream: CUDAStream) throws -> [UInt8] {
        let scratch = try context.memoryPool.allocate(byteCount: key.m * key.n * key.dtype.byteCount(forElements: 1), stream: stream)
        func launch(_ candidate: [UInt8]) -> Bool {
            matmul(plan, algorithm: candidate, x: operands.x, weight: operands.weight, output: scratch.address,
                   accumulate: key.accumulate, stream: stream) == CUBLASLtConstant.success
        }
        let usable = candidates.filter { launch($0) }
        var best = [Double](repeating: .infinity, count: usable.count)
        let events = try usable.map { _ in (try context.makeEvent(), try context.makeEvent()) }
        for _ in 0..<Self.tuningRounds {
            var launched = [Bool](repeating: true, count: usable.count)
            for (index, candidate) in usable.enumerated() {
                try stream.record(events[index].0)
                launched[index] = (0..<Self.tuningLaunchesPerRound).allSatisfy { _ in launch(candidate) }
                try stream.record(events[index].1)
            }
            try stream.synchronize()
            for index in usable.indices where launched[index] {
                best[index] = min(best[index], try events[index].1.milliseconds(since: events[index].0))
            }
        }
        guard let fastest = usable.indices.filter({ best[$0].isFinite }).min(by: { best[$0] < best[$1] }) else { return candidates[0] }
        record(key, lines: usable.indices.map { index in
            "\(index == fastest ? "*" : " ") \(best[index].isFinite ? String((best[index] * 10_000).rounded() / 10_000) : "failed") ms  \(describe(usable[index]))"
        })
        return usable[fastest]
    }

    /// cuBLASLt's configuration of `algorithm` (a heuristic result): id, tile, split-K, reduction, swizzle, custom
    /// option, stages and cluster shape, as numbers of its enums.
    func describe(_ algorithm: [UInt8]) -> String {
        algorithm.withUnsafeBytes { bytes in
            CUBLASLtConstant.algorithmConfigAttributes.map { name, attribute, size in
                var value: UInt32 = 0
                var written = 0
                let status = api.algoConfigGetAttribute(bytes.baseAddress, attribute, &value, size, &written)
                return "\(name) \(status == CUBLASLtConstant.success ? String(value) : "?")"
            }.joined(separator: ", ")
        }
    }
}
