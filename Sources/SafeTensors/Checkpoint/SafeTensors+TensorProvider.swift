import NunchakuCore

// Checkpoints and single files serve model loaders through NunchakuCore's `TensorProvider`.

extension SafeTensorsCheckpoint: TensorProvider {
    public func tensor(named name: String) throws -> Tensor { try tensor(name) }
}

extension SafeTensorsFile: TensorProvider {
    public func tensor(named name: String) throws -> Tensor { try tensor(name) }
}
