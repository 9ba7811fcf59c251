/// A progress report of the FLUX pipeline: sent when a stage starts (`completed == 0`), after each unit of work
/// (each model loaded, each text encoder run, each denoising step, the decode), and so once more when it ends.
public struct FluxPipelineProgress: Sendable, Equatable {
    /// The parts of a run, in order.
    public enum Stage: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
        /// Reading the models (`FluxPipelineLoader`): one unit per model.
        case loading
        /// Tokenizing and running CLIP and T5: one unit per text encoder.
        case encoding
        /// The denoising loop: one unit per step.
        case denoising
        /// VAE decode and conversion to 8-bit images: one unit.
        case decoding

        public var description: String {
            switch self {
            case .loading: "loading the models"
            case .encoding: "encoding the prompt"
            case .denoising: "denoising"
            case .decoding: "decoding the image"
            }
        }
    }

    public let stage: Stage
    /// Units of the stage done so far.
    public let completed: Int
    /// Units of the stage in all.
    public let total: Int
    /// The unit that comes next, e.g. "text_encoder_2" or "step 3/28" ("done" at the end).
    public let detail: String
    /// Seconds since the stage started.
    public let elapsedSeconds: Double

    public init(stage: Stage, completed: Int, total: Int, detail: String, elapsedSeconds: Double) {
        self.stage = stage
        self.completed = completed
        self.total = total
        self.detail = detail
        self.elapsedSeconds = elapsedSeconds
    }
}

/// What a progress handler wants the pipeline to do next.
public enum FluxPipelineProgressReply: Sendable, Equatable {
    /// Go on.
    case proceed
    /// Stop as soon as the current unit is done: the call throws `FluxPipelineError.cancelled`.
    case cancel
}

/// Receives progress reports on the calling thread; its reply can cancel the run.
public typealias FluxPipelineProgressHandler = (FluxPipelineProgress) -> FluxPipelineProgressReply

/// Sends the reports of one stage and turns a `.cancel` reply into `FluxPipelineError.cancelled`.
struct FluxStageReporter {
    let stage: FluxPipelineProgress.Stage
    let total: Int
    let handler: FluxPipelineProgressHandler?
    /// Denoising steps finished before this stage (for the cancellation error).
    let completedSteps: Int
    private let start = ContinuousClock.now

    init(_ stage: FluxPipelineProgress.Stage, total: Int, completedSteps: Int = 0, handler: FluxPipelineProgressHandler?) {
        self.stage = stage
        self.total = total
        self.completedSteps = completedSteps
        self.handler = handler
    }

    /// Reports `completed` units done; throws when the handler cancels.
    func report(_ completed: Int, _ detail: String) throws {
        guard let handler else { return }
        let progress = FluxPipelineProgress(stage: stage, completed: completed, total: total, detail: detail,
                                            elapsedSeconds: (ContinuousClock.now - start).inSeconds)
        if handler(progress) == .cancel {
            throw FluxPipelineError.cancelled(stage: stage, completedSteps: stage == .denoising ? completed : completedSteps)
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
