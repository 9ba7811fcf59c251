import NunchakuCore
import SafeTensors

/// A safetensors checkpoint (file, shard index or folder) served as a `TensorProvider`; tensors are views into the
/// memory-mapped files.
public struct CheckpointTensors: TensorProvider, @unchecked Sendable {
    public let checkpoint: SafeTensorsCheckpoint

    public init(_ checkpoint: SafeTensorsCheckpoint) { self.checkpoint = checkpoint }

    /// Opens the checkpoint at `path`.
    public init(path: String) throws { self.init(try SafeTensorsCheckpoint(path: path)) }

    public var tensorNames: [String] { checkpoint.tensorNames }

    public func tensor(named name: String) throws -> Tensor { try checkpoint.tensor(name) }
}
