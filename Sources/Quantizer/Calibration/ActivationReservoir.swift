import Foundation

/// A bounded, uniformly random subset of the activation rows one linear sees over any number of forwards
/// (reservoir sampling, Vitter's algorithm R): after `seen` rows each of them is kept with probability
/// `capacity / seen`, in at most `capacity × width` floats. Seeded, so a run is reproducible.
///
/// Thread-safe: a model may call its layers from several threads.
public final class ActivationReservoir: @unchecked Sendable {
    public let capacity: Int
    public let width: Int
    private let lock = NSLock()
    private var rows: [Float] = []
    private var seen = 0
    private var random: SeededGaussian

    /// A reservoir of at most `capacity` rows of `width` values.
    public init(capacity: Int, width: Int, seed: UInt64) {
        precondition(capacity > 0 && width > 0, "a reservoir needs a positive capacity and width")
        self.capacity = capacity
        self.width = width
        self.random = SeededGaussian(seed: seed)
    }

    /// Offers `values` ([count, width] row-major), row by row.
    public func add(_ values: [Float]) {
        precondition(values.count % width == 0, "\(values.count) values are not whole rows of \(width)")
        lock.lock()
        defer { lock.unlock() }
        for row in 0..<(values.count / width) {
            let slice = values[(row * width)..<((row + 1) * width)]
            if seen < capacity {
                rows.append(contentsOf: slice)
            } else {
                let pick = Int(random.nextBits() % UInt64(seen + 1))
                if pick < capacity { rows.replaceSubrange((pick * width)..<((pick + 1) * width), with: slice) }
            }
            seen += 1
        }
    }

    /// The number of rows offered so far.
    public var rowsSeen: Int {
        lock.lock()
        defer { lock.unlock() }
        return seen
    }

    /// The kept rows, [min(seen, capacity), width] row-major.
    public var sample: [Float] {
        lock.lock()
        defer { lock.unlock() }
        return rows
    }
}
