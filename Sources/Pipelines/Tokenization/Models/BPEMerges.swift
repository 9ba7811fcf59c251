import NunchakuCore
import SafeTensors

/// The merge table of a BPE model and the merge loop.
struct BPEMerges: Sendable {
    private struct Pair: Hashable {
        let left: Int
        let right: Int
    }

    /// For each mergeable pair of ids: its rank (position in the file) and the id of the merged token.
    private let table: [Pair: (rank: Int, merged: Int)]

    /// Reads `merges`, either `"a b"` strings (older files) or `["a", "b"]` pairs. The merged token is `a` followed
    /// by `b` without its continuing-subword prefix; all three must be in the vocabulary.
    init(_ entries: [JSONValue], vocabulary: [[UInt8]: Int], prefixLength: Int, location: String) throws {
        var table: [Pair: (rank: Int, merged: Int)] = [:]
        for (rank, entry) in entries.enumerated() {
            let parts: [String]
            switch entry {
            case let .string(line):
                parts = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            case let .array(elements):
                parts = elements.compactMap(\.stringValue)
                guard parts.count == elements.count else {
                    throw NunchakuError.invalidArgument(context: "\(location)[\(rank)]", reason: "expected two strings")
                }
            default:
                throw NunchakuError.invalidArgument(context: "\(location)[\(rank)]",
                                                    reason: "expected a string or an array, found \(entry.kindDescription)")
            }
            guard parts.count == 2 else {
                throw NunchakuError.invalidArgument(context: "\(location)[\(rank)]", reason: "a merge needs exactly two tokens")
            }
            let left = utf8Key(parts[0])
            let right = utf8Key(parts[1])
            let merged = left + right.dropFirst(min(prefixLength, right.count))
            for token in [left, right, merged] where vocabulary[token] == nil {
                throw NunchakuError.invalidArgument(
                    context: "\(location)[\(rank)]",
                    reason: "token \"\(String(decoding: token, as: UTF8.self))\" is not in the vocabulary")
            }
            // Like the Rust hash map `tokenizers` collects into, a repeated pair keeps its last rank.
            table[Pair(left: vocabulary[left]!, right: vocabulary[right]!)] = (rank, vocabulary[merged]!)
        }
        self.table = table
    }

    /// Merges `symbols` (token ids) until no adjacent pair has a merge: each round merges the pair of lowest rank,
    /// the leftmost among equals. A heap of candidates with lazy invalidation keeps long words fast.
    func apply(to symbols: [Int]) -> [Int] {
        guard symbols.count > 1 else { return symbols }
        var ids = symbols
        var next = Array(1...symbols.count)
        next[symbols.count - 1] = -1
        var previous = Array(-1..<(symbols.count - 1))
        var alive = [Bool](repeating: true, count: symbols.count)
        var queue = MergeQueue()
        for position in 0..<(symbols.count - 1) {
            if let merge = table[Pair(left: ids[position], right: ids[position + 1])] {
                queue.push(MergeCandidate(rank: merge.rank, position: position, merged: merge.merged))
            }
        }
        while let candidate = queue.pop() {
            let position = candidate.position
            guard alive[position], next[position] >= 0 else { continue }
            let right = next[position]
            guard let merge = table[Pair(left: ids[position], right: ids[right])], merge.merged == candidate.merged else {
                continue
            }
            ids[position] = merge.merged
            alive[right] = false
            next[position] = next[right]
            if next[right] >= 0 { previous[next[right]] = position }
            if previous[position] >= 0, let left = table[Pair(left: ids[previous[position]], right: ids[position])] {
                queue.push(MergeCandidate(rank: left.rank, position: previous[position], merged: left.merged))
            }
            if next[position] >= 0, let following = table[Pair(left: ids[position], right: ids[next[position]])] {
                queue.push(MergeCandidate(rank: following.rank, position: position, merged: following.merged))
            }
        }
        return ids.indices.filter { alive[$0] }.map { ids[$0] }
    }
}

/// A pair that may be merged: ordered by rank, then by position (leftmost first).
struct MergeCandidate {
    let rank: Int
    let position: Int
    let merged: Int

    func precedes(_ other: MergeCandidate) -> Bool {
        rank != other.rank ? rank < other.rank : position < other.position
    }
}

/// A binary min-heap of merge candidates.
struct MergeQueue {
    private var heap: [MergeCandidate] = []

    mutating func push(_ candidate: MergeCandidate) {
        heap.append(candidate)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> MergeCandidate? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < heap.count, heap[left].precedes(heap[smallest]) { smallest = left }
                if right < heap.count, heap[right].precedes(heap[smallest]) { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}
