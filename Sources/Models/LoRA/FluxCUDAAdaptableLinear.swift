import CUDABackend
import Foundation
import NunchakuCore
import SVDQuant

/// A layer of the CUDA model whose LoRA branch can change while the model is in use. W4A4 layers get the ranks
/// concatenated onto their own low-rank branch (a layer sharing the 4-bit weights, with new low-rank tensors: only
/// those are uploaded); dense and AWQ layers get a side branch, `y + round(round(x·downᵀ)·upᵀ)` as two GEMMs and an
/// add, the steps of the CPU's `LowRankSideBranchLinear`. Going back to the base layer is exact.
final class FluxCUDAAdaptableLinear: @unchecked Sendable {
    let base: FluxCUDALinear
    let context: CUDAContext
    private let lock = NSLock()
    private var current: Current = .base
    /// The base W4A4 layer's own low-rank tensors (canonical, activation dtype), downloaded on first use.
    private var baseLowRank: (projDown: Tensor, projUp: Tensor)?

    private enum Current {
        case base
        case w4a4(CUDASVDQW4A4Linear)
        case sideBranch(down: DeviceTensor, up: DeviceTensor, ones: DeviceTensor)
    }

    init(base: FluxCUDALinear, context: CUDAContext) {
        self.base = base
        self.context = context
    }

    func callAsFunction(_ x: DeviceTensor, gemm: CUDAGEMM) throws -> DeviceTensor {
        switch lock.withLock({ current }) {
        case .base:
            return try base(x, gemm: gemm)
        case let .w4a4(layer):
            return try layer.forward(x)
        case let .sideBranch(down, up, ones):
            let y = try base(x, gemm: gemm)
            let update = try gemm.linear(try gemm.linear(x, weight: down), weight: up)
            let rows = y.shape.dropLast().reduce(1, *), width = y.shape.last ?? 0
            let y3 = try y.reshaped([1, rows, width])
            try context.gatedAdd(residual: y3, gate: ModulationChunk(ones), update: try update.reshaped([1, rows, width]), into: y3)
            return y
        }
    }

    /// Whether a LoRA branch is on the layer (false: it runs as `base`).
    var hasBranch: Bool {
        if case .base = lock.withLock({ current }) { return false }
        return true
    }

    /// `base.fastLayer` while no LoRA branch is on the layer; nil otherwise.
    var fastLayer: CUDASVDQW4A4FastLinear? {
        guard case .base = lock.withLock({ current }) else { return nil }
        return base.fastLayer
    }

    /// Runs the base layer plus `branch` from now on (the base layer alone for nil).
    func adapt(_ branch: LowRankBranch?) throws {
        guard let branch else {
            lock.withLock { current = .base }
            return
        }
        let next: Current
        if case let .w4a4(layer) = base {
            let own = try lock.withLock { try baseLowRank ?? layer.lowRankTensors() }
            lock.withLock { baseLowRank = own }
            let (down, up) = branch.appended(toDown: own.projDown, up: own.projUp, dtype: layer.activationDType.dtype)
            next = .w4a4(try CUDASVDQW4A4Linear(sharingQuantizedWeightsOf: layer, projDown: down, projUp: up))
        } else {
            func upload(_ values: [Float], _ shape: [Int]) throws -> DeviceTensor {
                try DeviceTensor(uploading: Tensor.rounding(values, shape: shape, to: .bf16), context: context)
            }
            next = .sideBranch(
                down: try upload(branch.down, [branch.rank, branch.inFeatures]), up: try upload(branch.up, [branch.outFeatures, branch.rank]),
                ones: try upload([Float](repeating: 1, count: branch.outFeatures), [1, branch.outFeatures]))
        }
        lock.withLock { current = next }
    }
}

/// The CUDA model's adaptable layers by name, filled while the model loads.
final class FluxCUDAAdaptableLayers: @unchecked Sendable {
    private let lock = NSLock()
    private var layers: [String: FluxCUDAAdaptableLinear] = [:]

    /// Wraps `layer` (named `name`) so LoRAs can reach it.
    func register(_ layer: FluxCUDALinear, name: String, context: CUDAContext) -> FluxCUDALinear {
        let adaptable = FluxCUDAAdaptableLinear(base: layer, context: context)
        lock.withLock { layers[name] = adaptable }
        return .adaptable(adaptable)
    }

    var all: [String: FluxCUDAAdaptableLinear] { lock.withLock { layers } }
}

/// The CUDA model's layers as LoRA targets.
struct CUDALoRATargets: LoRALayerTargets {
    let map: FluxLoRALayerMap
    let layers: [String: FluxCUDAAdaptableLinear]

    func adapt(_ layer: String, with branch: LowRankBranch?) throws {
        guard let target = layers[layer] else {
            throw NunchakuError.invalidArgument(context: layer, reason: "the CUDA model has no such layer to take a LoRA branch")
        }
        try target.adapt(branch)
    }
}
