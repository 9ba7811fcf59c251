import CPUBackend
import Foundation
import NunchakuCore
import SVDQuant

/// A CPU layer whose LoRA branch can change while the model is in use: it runs its base layer, or the base layer
/// with a low-rank branch (concatenated onto an SVDQuant W4A4 layer's own low-rank branch, a side branch on other
/// layers). Going back to the base layer is exact: the base layer object itself runs again.
final class AdaptableLinear: LinearLayer, @unchecked Sendable {
    let base: any LinearLayer
    let computeDType: DType
    private let lock = NSLock()
    private var current: any LinearLayer

    var name: String { base.name }
    var inFeatures: Int { base.inFeatures }
    var outFeatures: Int { base.outFeatures }

    init(base: any LinearLayer, computeDType: DType) {
        self.base = base
        self.computeDType = computeDType
        current = base
    }

    func forward(_ x: Tensor) throws -> Tensor {
        try lock.withLock { current }.forward(x)
    }

    /// Runs the base layer plus `branch` from now on (the base layer alone for nil).
    func adapt(_ branch: LowRankBranch?) throws {
        let layer: any LinearLayer
        switch (branch, base) {
        case (nil, _): layer = base
        case let (branch?, w4a4 as SVDQW4A4Linear): layer = SVDQW4A4Linear(weights: try w4a4.weights.appendingLowRank(branch))
        case let (branch?, _): layer = LowRankSideBranchLinear(base: base, branch: branch, parameterDType: computeDType)
        }
        lock.withLock { current = layer }
    }
}

/// Wraps every layer another factory makes in an `AdaptableLinear` and keeps them by name, so LoRAs can reach them.
final class AdaptableLinearFactory: LinearLayerFactory, @unchecked Sendable {
    let base: any LinearLayerFactory
    private let lock = NSLock()
    private var layers: [String: AdaptableLinear] = [:]

    init(wrapping base: any LinearLayerFactory) {
        self.base = base
    }

    func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let layer = AdaptableLinear(base: try base.makeLinear(spec, computeDType: computeDType, weights: weights), computeDType: computeDType)
        lock.withLock { layers[spec.name] = layer }
        return layer
    }

    /// The layers made so far, by name.
    var madeLayers: [String: AdaptableLinear] { lock.withLock { layers } }
}

/// The CPU model's layers as LoRA targets.
struct CPULoRATargets: LoRALayerTargets {
    let map: FluxLoRALayerMap
    let layers: [String: AdaptableLinear]

    func adapt(_ layer: String, with branch: LowRankBranch?) throws {
        guard let target = layers[layer] else {
            throw NunchakuError.invalidArgument(context: layer, reason: "the model has no such layer to take a LoRA branch")
        }
        try target.adapt(branch)
    }
}
