import NunchakuCore
import SafeTensors

/// SentencePiece's Unigram model as `tokenizers` runs it (T5).
///
/// The segmentation maximizes the sum of piece log-probabilities (Viterbi over scalar boundaries). Where no piece
/// covers a scalar, an unknown edge scores `min_score − 10`; consecutive unknown pieces are fused into one, which
/// then becomes its `<0xAB>` byte tokens when `byte_fallback` is set and they exist, else the unknown id.
struct UnigramModel: TokenModel {
    /// The penalty below the lowest piece score given to an unknown scalar (`K_UNK_PENALTY`).
    static let unknownPenalty = 10.0

    private let pieces: [String]
    private let scores: [Double]
    private let ids: [[UInt8]: Int]
    private let trie: ByteTrie
    private let minimumScore: Double
    private let unknownID: Int?
    private let byteFallback: Bool
    private let location: String

    /// Reads a tokenizer.json `Unigram` model.
    init(_ object: TokenizerJSONObject) throws {
        try self.init(entries: try object.array("vocab"), unknownID: try object.optionalInt("unk_id"),
                      byteFallback: try object.bool("byte_fallback", default: false), location: object.location)
    }

    /// A model from `vocab` entries (`[piece, score]`) with the given settings (`location` names the model).
    init(entries: [JSONValue], unknownID: Int?, byteFallback: Bool, location: String) throws {
        var pieces: [String] = []
        var scores: [Double] = []
        var ids: [[UInt8]: Int] = [:]
        var trie = ByteTrie()
        for (index, entry) in entries.enumerated() {
            guard let pair = entry.arrayElements, pair.count == 2, let piece = pair[0].stringValue,
                  let score = pair[1].numberValue else {
                throw NunchakuError.invalidArgument(context: "\(location).vocab[\(index)]", reason: "expected [piece, score]")
            }
            pieces.append(piece)
            scores.append(score)
            ids[utf8Key(piece)] = index
            trie.insert(utf8Key(piece), id: index)
        }
        if let unknownID, unknownID >= entries.count {
            throw NunchakuError.invalidArgument(context: "\(location).unk_id",
                                                reason: "\(unknownID) is outside the \(entries.count)-piece vocabulary")
        }
        self.pieces = pieces
        self.scores = scores
        self.ids = ids
        self.trie = trie
        minimumScore = scores.min() ?? 0
        self.unknownID = unknownID
        self.byteFallback = byteFallback
        self.location = location
    }

    func id(forToken token: [UInt8]) -> Int? { ids[token] }

    func token(forID id: Int) -> String? { pieces.indices.contains(id) ? pieces[id] : nil }

    func tokenize(_ word: [Unicode.Scalar]) throws -> [Int] {
        var result: [Int] = []
        for piece in try segment(utf8Key(word)) {
            if let id = ids[piece] {
                result.append(id)
                continue
            }
            if byteFallback {
                let byteIDs = piece.map { ids[byteFallbackToken($0)] }
                if byteIDs.allSatisfy({ $0 != nil }) {
                    result.append(contentsOf: byteIDs.map { $0! })
                    continue
                }
            }
            result.append(try requireUnknownID())
        }
        return result
    }

    /// The best segmentation of `bytes` (UTF-8 of one word) into pieces, unknown runs fused (`encode_optimized`).
    private func segment(_ bytes: [UInt8]) throws -> [[UInt8]] {
        struct BestPath {
            var score = 0.0
            var start: Int?
            var isUnknown = false
        }
        let unknownScore = minimumScore - Self.unknownPenalty
        var best = [BestPath](repeating: BestPath(), count: bytes.count + 1)
        var start = 0
        while start < bytes.count {
            let scoreHere = best[start].score
            let scalarLength = utf8Length(leadingByte: bytes[start])
            var coversOneScalar = false
            for (length, id) in trie.prefixes(of: bytes, from: start) {
                let candidate = scores[id] + scoreHere
                let end = start + length
                if best[end].start == nil || candidate > best[end].score {
                    best[end] = BestPath(score: candidate, start: start, isUnknown: id == unknownID)
                }
                if length == scalarLength { coversOneScalar = true }
            }
            if !coversOneScalar {
                _ = try requireUnknownID()
                let end = min(start + scalarLength, bytes.count)
                let candidate = unknownScore + scoreHere
                if best[end].start == nil || candidate > best[end].score {
                    best[end] = BestPath(score: candidate, start: start, isUnknown: true)
                }
            }
            start += scalarLength
        }
        var pieces: [[UInt8]] = []
        var unknownRun: [UInt8] = []
        var end = bytes.count
        while end > 0, let pieceStart = best[end].start {
            let piece = Array(bytes[pieceStart..<end])
            if best[end].isUnknown {
                unknownRun = piece + unknownRun
            } else {
                if !unknownRun.isEmpty { pieces.append(unknownRun) }
                unknownRun = []
                pieces.append(piece)
            }
            end = pieceStart
        }
        if !unknownRun.isEmpty { pieces.append(unknownRun) }
        return pieces.reversed()
    }

    private func requireUnknownID() throws -> Int {
        guard let unknownID else {
            throw NunchakuError.invalidArgument(context: location, reason: "text needs the unknown piece but unk_id is not set")
        }
        return unknownID
    }

    private func utf8Length(leadingByte byte: UInt8) -> Int {
        switch byte {
        case 0xF0...: 4
        case 0xE0...: 3
        case 0xC0...: 2
        default: 1
        }
    }
}

/// A byte trie over vocabulary pieces, for the prefix search of the Viterbi segmentation.
struct ByteTrie: Sendable {
    /// Child node of (node << 8 | byte).
    private var edges: [Int: Int] = [:]
    /// The piece id ending at each node (the last inserted one wins, as in `tokenizers`), or -1.
    private var terminal: [Int] = [-1]

    mutating func insert(_ key: [UInt8], id: Int) {
        var node = 0
        for byte in key {
            if let child = edges[node << 8 | Int(byte)] {
                node = child
            } else {
                terminal.append(-1)
                edges[node << 8 | Int(byte)] = terminal.count - 1
                node = terminal.count - 1
            }
        }
        if node != 0 { terminal[node] = id }
    }

    /// Every piece that is a prefix of `bytes[start...]`: its byte length and id, shortest first.
    func prefixes(of bytes: [UInt8], from start: Int) -> [(length: Int, id: Int)] {
        var found: [(length: Int, id: Int)] = []
        var node = 0
        var position = start
        while position < bytes.count, let child = edges[node << 8 | Int(bytes[position])] {
            node = child
            position += 1
            if terminal[node] >= 0 { found.append((position - start, terminal[node])) }
        }
        return found
    }
}
