import CPUBackend
import NunchakuCore

/// Stands in for a layer whose tensors had problems. The `WeightReader` has recorded why, so the load fails at
/// `finish()` and no model holding this is ever returned; the stand-in only lets loading go on to find the rest.
struct UnloadedLinear: LinearLayer {
    let name: String
    let inFeatures: Int
    let outFeatures: Int

    init(_ spec: LinearLayerSpec) {
        name = spec.name
        inFeatures = spec.inFeatures
        outFeatures = spec.outFeatures
    }

    func forward(_ x: Tensor) throws -> Tensor {
        throw NunchakuError.invalidArgument(context: name, reason: "this layer's tensors could not be loaded")
    }
}
