import CUDABackend
import NunchakuCore

/// What a case body works with: the GPU, a random source seeded for this case, and helpers for the steps every
/// case repeats (random inputs, poisoned outputs, downloads, timing).
public final class SelfTestEnvironment {
    /// The GPU under test. Cases queue work on its default stream.
    public let context: CUDAContext
    /// This case's seed (shown in the report; `--seed` with the run's base seed reproduces it).
    public let seed: UInt64
    /// Random numbers for this case; `randomTensor` draws its seeds from here.
    public var random: SelfTestRandom
    private let session: SelfTestSession

    init(context: CUDAContext, seed: UInt64, session: SelfTestSession) {
        self.context = context
        self.seed = seed
        random = SelfTestRandom(seed: seed)
        self.session = session
    }

    /// The stream cases use.
    public var stream: CUDAStream { context.defaultStream }

    /// Fresh random values in `range` (never zero), rounded to `dtype`.
    public func randomTensor(_ shape: [Int], _ dtype: DType, in range: ClosedRange<Float> = -1...1) -> RandomTensor {
        RandomTensor(shape: shape, dtype: dtype, range: range, seed: random.next())
    }

    /// `values` copied to the GPU.
    public func upload(_ values: RandomTensor) throws -> DeviceTensor {
        try DeviceTensor(uploading: values.tensor, context: context, stream: stream)
    }

    /// A new device tensor with every byte set to the poison pattern, so an element the kernel does not write is
    /// found afterwards (`SelfTestOutput.unwrittenElements`).
    public func poisonedOutput(_ shape: [Int], _ dtype: DType) throws -> DeviceTensor {
        let tensor = try DeviceTensor(shape: shape, dtype: dtype, context: context, stream: stream)
        try stream.fill(tensor.buffer, with: SelfTestPoison.byte)
        return tensor
    }

    /// Sets every byte of `tensor` to the poison pattern again.
    public func poison(_ tensor: DeviceTensor) throws {
        try stream.fill(tensor.buffer, with: SelfTestPoison.byte)
    }

    /// Waits for the GPU and brings `tensor` back, decoded, with its poison and NaN counts.
    public func download(_ tensor: DeviceTensor) throws -> SelfTestOutput {
        try SelfTestOutput(tensor.download(stream: stream))
    }

    /// The median GPU time of `launch` in milliseconds: `warmUp` untimed runs, then `repetitions` runs each
    /// bracketed by device events on `stream`. Run it after the checked launch: it overwrites the outputs with
    /// the same values.
    public func time(warmUp: Int = 2, repetitions: Int = 10, _ launch: () throws -> Void) throws -> Double {
        try BenchTiming.median(context, stream: stream, warmUp: warmUp, repetitions: repetitions) { _ in try launch() }
    }

    /// A value shared by all cases of this run, made by `make` the first time `key` is asked for (a cuBLASLt
    /// handle, say). A failure is not remembered: the next case tries again.
    public func shared<T>(_ key: String, _ make: () throws -> T) throws -> T {
        try session.value(key, make)
    }
}

/// Values shared by the cases of one run.
final class SelfTestSession {
    private var values: [String: Any] = [:]

    func value<T>(_ key: String, _ make: () throws -> T) throws -> T {
        if let existing = values[key] {
            guard let typed = existing as? T else {
                throw NunchakuError.invalidArgument(context: "self-test shared value \(key)", reason: "stored as \(type(of: existing)), asked as \(T.self)")
            }
            return typed
        }
        let made = try make()
        values[key] = made
        return made
    }
}
