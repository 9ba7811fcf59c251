import Foundation
import NunchakuCore

/// The sigma schedule and Euler step of diffusers' `FlowMatchEulerDiscreteScheduler` as `FluxPipeline` drives it,
/// reproducing its float32 arithmetic: `sigmas = linspace(1, 1/N, N)` (float64, then float32), the shift in float32
/// (`e^mu` rounded to float32 first, as NumPy does with a Python float), `timesteps = σ·1000`, a final σ = 0.
public struct FlowMatchEulerScheduler: Sendable {
    /// The N + 1 noise levels, from near 1 down to the final 0.
    public let sigmas: [Float]
    /// The N timesteps handed to the model (`σ · num_train_timesteps`).
    public let timesteps: [Float]
    /// The shift parameter used for dynamic shifting, nil for a constant shift.
    public let mu: Double?

    /// The schedule for `stepCount` steps of an image of `imageSequenceLength` latent tokens
    /// (`(height/16)·(width/16)` for FLUX).
    /// - Throws: `NunchakuError.invalidArgument` when `stepCount` is not positive.
    public init(configuration: FlowMatchSchedulerConfiguration, stepCount: Int, imageSequenceLength: Int) throws {
        guard stepCount > 0 else {
            throw NunchakuError.invalidArgument(context: "FlowMatchEulerScheduler", reason: "step count \(stepCount) must be positive")
        }
        let base = Self.linspace(from: 1.0, to: 1.0 / Double(stepCount), count: stepCount).map { Float($0) }
        let shifted: [Float]
        switch configuration.shifting {
        case let .constant(shift):
            mu = nil
            let scale = Float(shift)
            let slope = Float(shift - 1)
            shifted = base.map { scale * $0 / (1 + slope * $0) }
        case let .dynamic(baseShift, maxShift, baseLength, maxLength, exponential):
            let mu = Self.mu(imageSequenceLength: imageSequenceLength, baseShift: baseShift, maxShift: maxShift,
                             baseSequenceLength: baseLength, maxSequenceLength: maxLength)
            self.mu = mu
            let numerator = Float(exponential ? exp(mu) : mu)
            shifted = base.map { numerator / (numerator + (1 / $0 - 1)) }
        }
        let scale = Float(configuration.trainTimestepCount)
        timesteps = shifted.map { $0 * scale }
        sigmas = shifted + [0]
    }

    /// `calculate_shift`: `mu` for an image of `imageSequenceLength` tokens, in float64 as in Python.
    public static func mu(imageSequenceLength: Int, baseShift: Double = 0.5, maxShift: Double = 1.15,
                          baseSequenceLength: Int = 256, maxSequenceLength: Int = 4096) -> Double {
        let slope = (maxShift - baseShift) / Double(maxSequenceLength - baseSequenceLength)
        let intercept = baseShift - slope * Double(baseSequenceLength)
        return Double(imageSequenceLength) * slope + intercept
    }

    /// NumPy's `linspace(start, stop, count)` in float64: `i·step + start`, the last value exactly `stop`.
    static func linspace(from start: Double, to stop: Double, count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (stop - start) / Double(count - 1)
        var values = (0..<count).map { Double($0) * step + start }
        values[count - 1] = stop
        return values
    }

    /// The number of denoising steps.
    public var stepCount: Int { timesteps.count }

    /// One Euler step in place: `x ← x + (σ[i+1] − σ[i])·v`, rounded the way diffusers does for a model output
    /// of dtype `precision`. For `.f32` everything is float32. For `.bf16` / `.f16` (a model running in half
    /// precision) PyTorch first rounds the float32 `dt` to that dtype, rounds the product `dt·v` to it, adds it to
    /// the float32 copy of the sample and rounds the sum back.
    /// - Throws: `NunchakuError` when `index` is not a step of this schedule, the sizes differ, or `precision` is
    ///   not one of f32, bf16, f16.
    public func step(_ sample: inout [Float], velocity: [Float], index: Int, precision: DType = .f32) throws {
        guard timesteps.indices.contains(index) else {
            throw NunchakuError.invalidArgument(context: "scheduler step", reason: "step \(index) outside 0..<\(stepCount)")
        }
        guard sample.count == velocity.count else {
            throw NunchakuError.shapeMismatch(context: "scheduler step velocity", expected: [sample.count], actual: [velocity.count])
        }
        let dt = sigmas[index + 1] - sigmas[index]
        switch precision {
        case .f32:
            for i in sample.indices { sample[i] += dt * velocity[i] }
        case .bf16, .f16:
            let round: (Float) -> Float = precision == .bf16
                ? { FloatFormats.float(bf16: FloatFormats.bf16Bits($0)) }
                : { FloatFormats.float(f16: FloatFormats.f16Bits($0)) }
            let roundedDT = round(dt)
            for i in sample.indices { sample[i] = round(sample[i] + round(roundedDT * velocity[i])) }
        default:
            throw NunchakuError.dtypeMismatch(context: "scheduler step", expected: [.f32, .bf16, .f16], actual: precision)
        }
    }
}
