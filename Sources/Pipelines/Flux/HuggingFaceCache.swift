import Foundation
import NunchakuCore

/// Finds models downloaded by `huggingface_hub` in the local cache, without network access.
///
/// The cache holds `models--<org>--<name>/snapshots/<revision>/` per repo, and `refs/main` names the revision
/// `main` points at. It lives in `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`
/// (`$XDG_CACHE_HOME/huggingface/hub` when that is set); every one of these that exists is searched, in that order.
public struct HuggingFaceCache: Sendable {
    /// The cache folders searched, in order.
    public let folders: [String]

    /// The cache folders of this process's environment.
    public init() {
        var folders: [String] = []
        if let hubCache = Environment.value("HF_HUB_CACHE") { folders.append(hubCache) }
        if let home = Environment.value("HF_HOME") { folders.append((home as NSString).appendingPathComponent("hub")) }
        if let xdg = Environment.value("XDG_CACHE_HOME") {
            folders.append((xdg as NSString).appendingPathComponent("huggingface/hub"))
        }
        if let home = Environment.value("HOME") {
            folders.append((home as NSString).appendingPathComponent(".cache/huggingface/hub"))
        }
        var seen = Set<String>()
        self.folders = folders.filter { seen.insert($0).inserted }
    }

    /// A cache made of exactly `folders` (tests, or a custom location).
    public init(folders: [String]) {
        self.folders = folders
    }

    /// Whether `reference` has the form of a Hub repo id, `org/name` (letters, digits, `-`, `_`, `.`).
    public static func isRepoID(_ reference: String) -> Bool {
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        return parts.count == 2 && parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".." && part.unicodeScalars.allSatisfy(allowed.contains)
        }
    }

    /// The snapshot folder of `repoID`: the revision `refs/main` names when it is there, else the most recently
    /// modified snapshot.
    /// - Throws: `FluxPipelineError.notInCache` naming the repo and every place it was looked for.
    public func snapshot(of repoID: String) throws -> String {
        let repoFolder = "models--" + repoID.replacingOccurrences(of: "/", with: "--")
        var searched: [String] = []
        for folder in folders {
            let repo = (folder as NSString).appendingPathComponent(repoFolder)
            let snapshots = (repo as NSString).appendingPathComponent("snapshots")
            searched.append(snapshots)
            if let snapshot = Self.preferredSnapshot(repo: repo, snapshots: snapshots) { return snapshot }
        }
        throw FluxPipelineError.notInCache(repoID: repoID, searched: searched)
    }

    private static func preferredSnapshot(repo: String, snapshots: String) -> String? {
        let manager = FileManager.default
        let ref = (repo as NSString).appendingPathComponent("refs/main")
        if let data = manager.contents(atPath: ref),
           let revision = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
           !revision.isEmpty {
            let path = (snapshots as NSString).appendingPathComponent(revision)
            if manager.fileExists(atPath: path) { return path }
        }
        let names = (try? manager.contentsOfDirectory(atPath: snapshots)) ?? []
        let dated = names.map { name -> (String, Date) in
            let path = (snapshots as NSString).appendingPathComponent(name)
            let date = (try? manager.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
            return (path, date)
        }
        return dated.max { ($0.1, $0.0) < ($1.1, $1.0) }?.0
    }
}
