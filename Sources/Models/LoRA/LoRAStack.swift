import Foundation
import NunchakuCore

/// The layers of a loaded model that LoRA branches go onto (CPU or CUDA).
protocol LoRALayerTargets: Sendable {
    /// Where the model's diffusers modules live.
    var map: FluxLoRALayerMap { get }
    /// Makes layer `layer` run its base weights plus `branch` (the base weights alone for nil).
    func adapt(_ layer: String, with branch: LowRankBranch?) throws
}

/// The LoRAs applied to one model, each with a strength that can change at run time without reloading anything.
///
/// Every LoRA adds ranks to the layers it touches: onto the low-rank branch of SVDQuant W4A4 layers (q/k/v into the
/// fused QKV layer, the single-block `proj_out` split into `out_proj` and `mlp_fc2`), as a side branch on dense and
/// AWQ layers. A strength scales only the LoRA's `up` columns; a LoRA at strength 0 drops out of its layers, so
/// strength 0 and `reset()` give the base model's output bit for bit. A LoRA is checked against the model before
/// anything changes: a LoRA that does not fit leaves the model as it was.
public final class LoRAStack: @unchecked Sendable {
    /// An applied LoRA.
    public struct Entry: Sendable {
        public let id: Int
        public let source: String
        public let format: LoRAFormat
        public internal(set) var strength: Float
        /// The layers it touches, sorted.
        public let layers: [String]
        let branches: [String: LowRankBranch]
    }

    let targets: any LoRALayerTargets
    private let lock = NSLock()
    private var entries: [Entry] = []
    private var nextID = 0

    init(targets: any LoRALayerTargets) {
        self.targets = targets
    }

    /// The applied LoRAs, in the order they were added.
    public var applied: [Entry] { lock.withLock { entries } }

    /// Applies `lora` at `strength` (on top of the LoRAs already applied) and returns its id.
    /// - Throws: `LoRAError` naming the file and every key that does not fit this model (nothing is applied then).
    @discardableResult
    public func add(_ lora: LoRAFile, strength: Float = 1) throws -> Int {
        guard strength.isFinite else { throw LoRAError(file: lora.source, problems: ["strength \(strength) is not finite"]) }
        let branches = try LoRALayerPlan.branches(of: lora, on: targets.map)
        return try lock.withLock {
            let entry = Entry(id: nextID, source: lora.source, format: lora.format, strength: strength,
                              layers: branches.keys.sorted(), branches: branches)
            nextID += 1
            entries.append(entry)
            try rebuild(Set(entry.layers))
            return entry.id
        }
    }

    /// Changes the strength of LoRA `id`; only the layers it touches are rebuilt (their `up` columns rescaled).
    public func setStrength(_ strength: Float, for id: Int) throws {
        guard strength.isFinite else { throw NunchakuError.invalidArgument(context: "LoRA \(id)", reason: "strength \(strength) is not finite") }
        try lock.withLock {
            let index = try self.index(of: id)
            entries[index].strength = strength
            try rebuild(Set(entries[index].layers))
        }
    }

    /// Removes LoRA `id`; its layers go back to the base weights plus the other LoRAs.
    public func remove(_ id: Int) throws {
        try lock.withLock {
            let removed = entries.remove(at: try index(of: id))
            try rebuild(Set(removed.layers))
        }
    }

    /// Removes every LoRA: every layer runs its base weights again, exactly.
    public func reset() throws {
        try lock.withLock {
            let layers = Set(entries.flatMap(\.layers))
            entries.removeAll()
            try rebuild(layers)
        }
    }

    private func index(of id: Int) throws -> Int {
        guard let index = entries.firstIndex(where: { $0.id == id }) else {
            throw NunchakuError.invalidArgument(context: "LoRA \(id)", reason: "no LoRA with this id is applied")
        }
        return index
    }

    /// Gives each layer the branches of the LoRAs touching it at a nonzero strength, side by side in order.
    private func rebuild(_ layers: Set<String>) throws {
        for layer in layers.sorted() {
            let branches = entries.compactMap { entry in entry.strength == 0 ? nil : entry.branches[layer]?.scaled(by: entry.strength) }
            try targets.adapt(layer, with: LowRankBranch.concatenating(branches))
        }
    }
}
