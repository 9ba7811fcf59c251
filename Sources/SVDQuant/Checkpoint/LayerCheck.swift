import SafeTensors

/// Checks the header entries of one quantized layer (presence, shape, dtype, tile multiples, agreement with the
/// quantization config) and collects every problem, named by the file's tensor names.
struct LayerCheck {
    let filePrefix: String
    let tensors: [(parameter: String, info: TensorInfo)]
    let expected: LayerInventory.Expectations
    private(set) var problems: [TensorProblem] = []

    private static let halfTypes: [SafeTensorsDType] = [.bf16, .f16]

    init(filePrefix: String, tensors: [(parameter: String, info: TensorInfo)], expected: LayerInventory.Expectations) {
        self.filePrefix = filePrefix
        self.tensors = tensors
        self.expected = expected
    }

    /// A W4A4 layer's record, or nil when its `qweight` is too broken to size the other tensors by.
    mutating func w4a4(naming: SVDQuantParameterNaming) -> LayerInventory.W4A4Layer? {
        let lite = expected.container == .nunchakuLite
        var infos: [W4A4TensorRole: TensorInfo] = [:]
        for (parameter, info) in tensors {
            guard let role = naming.role(ofParameter: parameter), !lite || Self.liteRoles.contains(role) else {
                problems.append(.unexpected(tensor: info.name))
                continue
            }
            infos[role] = info
        }
        let precision = layerPrecision(infos[.wscales])
        var required = W4A4TensorRole.required
        if lite && precision == .nvfp4 { required.formUnion([.wcscales, .wtscale]) }
        if lite && precision == .int4 {
            for role in [W4A4TensorRole.wcscales, .wtscale] {
                if let info = infos.removeValue(forKey: role) { problems.append(.unexpected(tensor: info.name)) }
            }
        }
        for role in W4A4TensorRole.allCases where required.contains(role) && infos[role] == nil {
            problems.append(.missing(tensor: "\(filePrefix).\(naming.parameterName(role))"))
        }
        guard let qweight = infos[.qweight], let (n, k) = matrix(qweight, dtypes: [.i8, .u8], rowsPerEntry: 1),
              divisible(n, by: 128, "N (rows)", qweight), divisible(k, by: 128, "K (2 × columns)", qweight)
        else { return nil }
        let rank = layerRank(infos[.projDown])
        let groups = k / (precision ?? .int4).groupSize
        if let wscales = infos[.wscales] { shape(wscales, [groups, n]) }
        check(infos[.smooth], [k], Self.halfTypes)
        check(infos[.smoothOrig], [k], Self.halfTypes)
        check(infos[.bias], [n], Self.halfTypes)
        check(infos[.wcscales], [n], Self.halfTypes)
        check(infos[.projDown], [k, rank], Self.halfTypes)
        check(infos[.projUp], [n, rank], Self.halfTypes)
        if let wtscale = infos[.wtscale] {
            if wtscale.elementCount != 1 || wtscale.shape.count > 1 { problems.append(.shape(tensor: wtscale.name, expected: [1], actual: wtscale.shape)) }
            dtype(wtscale, [.bf16, .f16, .f32])
        }
        return LayerInventory.W4A4Layer(tensors: infos.mapValues(\.name))
    }

    /// An AWQ layer's record, or nil when its `qweight` is too broken to size the other tensors by.
    mutating func awq() -> LayerInventory.AWQLayer? {
        var infos: [AWQTensorRole: TensorInfo] = [:]
        for (parameter, info) in tensors {
            guard let role = AWQTensorRole(rawValue: parameter) else {
                problems.append(.unexpected(tensor: info.name))
                continue
            }
            infos[role] = info
        }
        for role in AWQTensorRole.allCases where AWQTensorRole.required.contains(role) && infos[role] == nil {
            problems.append(.missing(tensor: "\(filePrefix).\(role.parameterName)"))
        }
        // Nunchaku and Lite store TinyChat int32 [N/4, K/2]; the canonical layout u8 codes [N, K/2].
        let canonical = expected.container == .canonical
        guard let qweight = infos[.qweight],
              let (n, k) = matrix(qweight, dtypes: canonical ? [.u8, .i8] : [.i32], rowsPerEntry: canonical ? 1 : 4),
              divisible(n, by: 4, "N", qweight), divisible(k, by: 64, "K", qweight)
        else { return nil }
        check(infos[.wscales], [k / 64, n], Self.halfTypes)
        check(infos[.wzeros], [k / 64, n], Self.halfTypes)
        check(infos[.bias], [n], Self.halfTypes)
        return LayerInventory.AWQLayer(tensors: infos.mapValues(\.name))
    }

    /// The parameters Nunchaku-Lite's `SVDQW4A4Linear` has (research/nunchaku-internals.md §1.6).
    private static let liteRoles: Set<W4A4TensorRole> = [.qweight, .wscales, .smooth, .projDown, .projUp, .bias, .wcscales, .wtscale]

    /// The precision `wscales`' dtype stands for, checked against the checkpoint's.
    private mutating func layerPrecision(_ wscales: TensorInfo?) -> SVDQuantPrecision? {
        guard let wscales else { return expected.precision }
        let precision: SVDQuantPrecision
        switch wscales.dtype {
        case .f8e4m3: precision = .nvfp4
        case .bf16, .f16: precision = .int4
        default:
            problems.append(.dtype(tensor: wscales.name, expected: ["BF16", "F16", "F8_E4M3"], actual: wscales.dtype.name))
            return expected.precision
        }
        if let declared = expected.precision, declared != precision {
            problems.append(.invalid(
                tensor: wscales.name,
                reason: "dtype \(wscales.dtype.name) holds \(precision) scales, but \(expected.precisionOrigin) says \(declared)"))
        }
        return precision
    }

    /// The rank `proj_down` has, checked for a multiple of 16 and against the checkpoint's.
    private mutating func layerRank(_ projDown: TensorInfo?) -> Int {
        guard let projDown, projDown.shape.count == 2 else { return expected.rank ?? 0 }
        let rank = projDown.shape[1]
        if rank % 16 != 0 {
            problems.append(.invalid(tensor: projDown.name, reason: "rank \(rank) is not a multiple of 16"))
        } else if let declared = expected.rank, declared != rank {
            problems.append(.invalid(tensor: projDown.name, reason: "rank \(rank), but \(expected.rankOrigin) says \(declared)"))
        }
        return rank
    }

    /// N and K of a 2-D `qweight` ([N / rowsPerEntry, K/2]).
    private mutating func matrix(_ info: TensorInfo, dtypes: [SafeTensorsDType], rowsPerEntry: Int) -> (Int, Int)? {
        guard dtype(info, dtypes) else { return nil }
        guard info.shape.count == 2 else {
            problems.append(.invalid(tensor: info.name, reason: "expected a 2-D tensor, got shape \(info.shape)"))
            return nil
        }
        return (info.shape[0] * rowsPerEntry, 2 * info.shape[1])
    }

    private mutating func divisible(_ value: Int, by multiple: Int, _ what: String, _ info: TensorInfo) -> Bool {
        guard value > 0, value % multiple == 0 else {
            problems.append(.invalid(tensor: info.name, reason: "\(what) = \(value) is not a positive multiple of \(multiple)"))
            return false
        }
        return true
    }

    private mutating func check(_ info: TensorInfo?, _ expectedShape: [Int], _ dtypes: [SafeTensorsDType]) {
        guard let info else { return }
        shape(info, expectedShape)
        dtype(info, dtypes)
    }

    private mutating func shape(_ info: TensorInfo, _ expectedShape: [Int]) {
        if info.shape != expectedShape { problems.append(.shape(tensor: info.name, expected: expectedShape, actual: info.shape)) }
    }

    @discardableResult
    private mutating func dtype(_ info: TensorInfo, _ dtypes: [SafeTensorsDType]) -> Bool {
        guard dtypes.contains(info.dtype) else {
            problems.append(.dtype(tensor: info.name, expected: dtypes.map(\.name), actual: info.dtype.name))
            return false
        }
        return true
    }
}
