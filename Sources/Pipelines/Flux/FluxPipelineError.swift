/// What can go wrong in the FLUX text-to-image pipeline itself (its parts report their own errors: tokenizers,
/// `WeightLoadingError`, `NunchakuError`, …).
public enum FluxPipelineError: Error, Equatable, CustomStringConvertible {
    /// The progress handler asked to stop. Nothing was written; `stage` is where the run stopped and
    /// `completedSteps` how many denoising steps had finished.
    case cancelled(stage: FluxPipelineProgress.Stage, completedSteps: Int)
    /// A pipeline folder lacks parts; `missing` lists each with where it was looked for.
    case missingParts(folder: String, missing: [String])
    /// A Hub repo id that is not in any local Hugging Face cache folder.
    case notInCache(repoID: String, searched: [String])
    /// A generation setting that cannot be used; `setting` names it.
    case invalidSetting(setting: String, reason: String)

    public var description: String {
        switch self {
        case let .cancelled(stage, completedSteps):
            "cancelled while \(stage.description) (after \(completedSteps) denoising step\(completedSteps == 1 ? "" : "s")); nothing was written"
        case let .missingParts(folder, missing):
            "\(folder) is not a complete FLUX pipeline folder; missing: \(missing.joined(separator: "; "))"
        case let .notInCache(repoID, searched):
            "\(repoID) is neither a folder nor a model in the local Hugging Face cache; looked in \(searched.isEmpty ? "no cache folder (set HF_HUB_CACHE or HF_HOME)" : searched.joined(separator: ", ")). Download it first (huggingface-cli download \(repoID)) or pass the pipeline folder"
        case let .invalidSetting(setting, reason):
            "\(setting): \(reason)"
        }
    }
}
