import Dispatch
import NunchakuCore

/// Runs `body(index)` for every index in `0..<count`, spread over the machine's cores, and returns when all are done.
///
/// The caller guarantees that different indices touch disjoint memory; under that contract `body` need not be
/// `@Sendable` (it may capture raw pointers). Falls back to a plain loop for one item or one core.
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    guard count > 1, Environment.processorCount > 1 else {
        for index in 0..<count { body(index) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let shared = unsafeBitCast(body, to: (@Sendable (Int) -> Void).self)
        DispatchQueue.concurrentPerform(iterations: count, execute: shared)
    }
}
