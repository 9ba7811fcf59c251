import NunchakuCore
import SafeTensors

/// The settings of diffusers' `FlowMatchEulerDiscreteScheduler` that FLUX-style pipelines use
/// (`scheduler/scheduler_config.json`).
public struct FlowMatchSchedulerConfiguration: Sendable, Equatable {
    /// How sigmas are shifted toward noise.
    public enum Shifting: Sendable, Equatable {
        /// `σ' = shift·σ / (1 + (shift − 1)·σ)`.
        case constant(shift: Double)
        /// Resolution-dependent: `mu` grows linearly with the image token count from `baseShift` at
        /// `baseSequenceLength` to `maxShift` at `maxSequenceLength`, then `σ' = e^mu / (e^mu + 1/σ − 1)`
        /// (`time_shift_type` "exponential") or `mu / (mu + 1/σ − 1)` ("linear").
        case dynamic(baseShift: Double, maxShift: Double, baseSequenceLength: Int, maxSequenceLength: Int,
                     exponential: Bool)
    }

    public var shifting: Shifting
    /// `num_train_timesteps`: timesteps are sigmas times this.
    public var trainTimestepCount: Int

    public init(shifting: Shifting, trainTimestepCount: Int = 1000) {
        self.shifting = shifting
        self.trainTimestepCount = trainTimestepCount
    }

    /// FLUX.1-dev: dynamic exponential shifting from 0.5 (256 tokens) to 1.15 (4096 tokens).
    public static let fluxDev = FlowMatchSchedulerConfiguration(
        shifting: .dynamic(baseShift: 0.5, maxShift: 1.15, baseSequenceLength: 256, maxSequenceLength: 4096,
                           exponential: true))
    /// FLUX.1-schnell: no shift.
    public static let fluxSchnell = FlowMatchSchedulerConfiguration(shifting: .constant(shift: 1.0))

    /// Reads a parsed scheduler_config.json, with diffusers' defaults for absent keys.
    /// - Throws: `NunchakuError.unsupported` for options that change the schedule in ways this engine does not
    ///   implement (Karras/exponential/beta sigmas, `shift_terminal`, inverted or stochastic sampling, flow sigmas),
    ///   `NunchakuError.invalidArgument` for values of the wrong kind.
    public init(json: JSONValue, source: String = "scheduler_config.json") throws {
        let root = try TokenizerJSONObject(json, location: source)
        for flag in ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
                     "stochastic_sampling", "use_flow_sigmas"] where try root.bool(flag, default: false) {
            throw NunchakuError.unsupported(context: root.location(of: flag), reason: "\(flag) is not implemented")
        }
        if let terminal = root["shift_terminal"], terminal != .null {
            throw NunchakuError.unsupported(context: root.location(of: "shift_terminal"), reason: "shift_terminal is not implemented")
        }
        func number(_ key: String, _ fallback: Double) throws -> Double {
            guard let value = root[key], value != .null else { return fallback }
            guard let number = value.numberValue else { throw root.invalid(key, "expected a number") }
            return number
        }
        trainTimestepCount = try root.optionalInt("num_train_timesteps") ?? 1000
        guard trainTimestepCount > 0 else { throw root.invalid("num_train_timesteps", "must be positive") }
        if try root.bool("use_dynamic_shifting", default: false) {
            let type = try root.optionalString("time_shift_type") ?? "exponential"
            guard type == "exponential" || type == "linear" else {
                throw root.invalid("time_shift_type", "expected \"exponential\" or \"linear\", found \"\(type)\"")
            }
            shifting = .dynamic(
                baseShift: try number("base_shift", 0.5), maxShift: try number("max_shift", 1.15),
                baseSequenceLength: try root.optionalInt("base_image_seq_len") ?? 256,
                maxSequenceLength: try root.optionalInt("max_image_seq_len") ?? 4096,
                exponential: type == "exponential")
        } else {
            shifting = .constant(shift: try number("shift", 1.0))
        }
    }

    /// Reads the scheduler_config.json at `path`.
    public init(contentsOfFile path: String) throws {
        try self.init(json: try readJSONFile(path), source: path)
    }
}
