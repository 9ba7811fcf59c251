/// One measured copy direction.
public struct TransferMeasurement: Sendable, Codable {
    /// `host→device`, `device→host` or `device→device`.
    public let direction: String
    /// Bytes copied per repetition.
    public let bytes: Int
    /// Median GPU time of one copy.
    public let milliseconds: Double
    /// `bytes` over the median time (for device→device this counts each byte once, not read plus write).
    public let gigabytesPerSecond: Double
    /// Whether the data arrived intact.
    public let verified: Bool
}

/// Times large asynchronous copies between pinned host memory and the device, and within the device.
public enum TransferBenchmark {
    /// Copies `byteCount` bytes each way `repetitions` times, timed with events; returns the medians.
    /// - Throws: allocation and copy errors.
    public static func run(on context: CUDAContext, byteCount: Int, repetitions: Int = 5) throws -> [TransferMeasurement] {
        let stream = context.defaultStream
        let deviceA = try context.memoryPool.allocate(byteCount: byteCount, stream: stream)
        let deviceB = try context.memoryPool.allocate(byteCount: byteCount, stream: stream)
        let source = try PinnedHostBuffer(context: context, byteCount: byteCount)
        let destination = try PinnedHostBuffer(context: context, byteCount: byteCount)
        for index in 0..<byteCount { source.bytes[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }

        func time(_ copy: () throws -> Void) throws -> Double {
            let start = try context.makeEvent()
            let end = try context.makeEvent()
            var samples: [Double] = []
            try copy()  // warm-up
            for _ in 0..<max(1, repetitions) {
                try stream.record(start)
                try copy()
                try stream.record(end)
                try end.synchronize()
                samples.append(try end.milliseconds(since: start))
            }
            return samples.sorted()[samples.count / 2]
        }

        let upload = try time { try stream.copy(from: source, to: deviceA) }
        let onDevice = try time { try stream.copy(byteCount, from: deviceA, to: deviceB) }
        let download = try time { try stream.copy(from: deviceB, to: destination) }
        try stream.synchronize()
        let intact = memcmpEqual(source.bytes, destination.bytes)

        func measurement(_ direction: String, _ milliseconds: Double) -> TransferMeasurement {
            TransferMeasurement(direction: direction, bytes: byteCount, milliseconds: milliseconds,
                                gigabytesPerSecond: Double(byteCount) / (milliseconds * 1e-3) / 1e9, verified: intact)
        }
        return [measurement("host→device", upload), measurement("device→device", onDevice),
                measurement("device→host", download)]
    }

    private static func memcmpEqual(_ left: UnsafeMutableRawBufferPointer, _ right: UnsafeMutableRawBufferPointer) -> Bool {
        left.count == right.count && left.elementsEqual(right)
    }
}
