import NunchakuCore

/// One safetensors file, opened for reading.
///
/// Opening maps the file and parses the header; no tensor bytes are read or copied until a
/// caller touches them. Tensors are views into the mapping, which stays alive as long as any
/// of them does.
public final class SafeTensorsFile: Sendable {
    /// The file's path (or the name given to an in-memory file).
    public let path: String
    /// The validated header.
    public let header: SafeTensorsHeader
    /// The whole file's bytes.
    private let storage: TensorStorage

    /// Maps and validates the file at `path`.
    /// - Throws: `SafeTensorsError.io` when it cannot be opened or mapped, or another `SafeTensorsError`
    ///   naming the problem in the header.
    public convenience init(path: String) throws {
        let mapped: MappedFile
        do {
            mapped = try MappedFile(path: path)
        } catch let NunchakuError.io(path, reason) {
            throw SafeTensorsError.io(path: path, reason: reason)
        }
        try self.init(storage: TensorStorage(mapped: mapped, offset: 0, count: mapped.bytes.count), name: path)
    }

    /// Parses a safetensors file held in memory (the bytes are copied once into owned storage).
    /// - Parameter name: what error messages call the file.
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        try self.init(storage: bytes.withUnsafeBytes { TensorStorage(copying: $0) }, name: name)
    }

    private init(storage: TensorStorage, name: String) throws {
        self.path = name
        self.header = try SafeTensorsHeader.parse(fileBytes: storage.bytes, file: name)
        self.storage = storage
    }

    /// The `__metadata__` map, or nil when the file has none.
    public var metadata: [String: String]? { header.metadata }

    /// Every tensor's header entry, in data order.
    public var tensorInfos: [TensorInfo] { header.tensors }

    /// The tensor names, in data order.
    public var tensorNames: [String] { header.tensors.map(\.name) }

    /// The size of the file in bytes.
    public var fileSize: Int { storage.bytes.count }

    /// The header entry of `name`.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = header.info(named: name) else { throw SafeTensorsError.tensorNotFound(source: path, tensor: name) }
        return info
    }

    /// The tensor's bytes as a view into the file (any format dtype).
    public func raw(_ name: String) throws -> RawTensor {
        let info = try info(name)
        return try RawTensor(
            dtype: info.dtype, shape: info.shape, storage: storage,
            byteOffset: header.dataStart + info.dataOffsets.lowerBound, name: name)
    }

    /// The tensor as an engine `Tensor` viewing the file (no copy).
    /// - Throws: `SafeTensorsError.tensorNotFound`, or `.unsupportedDType` for dtypes the engine lacks
    ///   (`F6_*`, `F8_*FNUZ`, `C64`; read those with `raw(_:)`).
    public func tensor(_ name: String) throws -> Tensor {
        try raw(name).tensor(name: name)
    }
}
