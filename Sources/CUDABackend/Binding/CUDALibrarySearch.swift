#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NunchakuCore

/// Where the CUDA libraries other than the driver (NVRTC, cuBLASLt) may live, in the order they are tried.
///
/// Order: the override variable (`NUNCHAKU_NVRTC_PATH` / `NUNCHAKU_CUBLASLT_PATH`, a file or a folder; when set it is
/// the only place searched), `$CUDA_HOME` and `$CUDA_PATH`, `/usr/local/cuda/lib64` then `/usr/local/cuda-*/lib64`
/// (newest first), the `nvidia/cu13`, `nvidia/cu12` and older per-library folders of every Python site-packages
/// folder found, and finally the bare names for the dynamic loader's own path.
public struct CUDALibrarySearch: Sendable {
    /// A library the search knows how to find.
    public enum Library: String, Sendable, CaseIterable {
        case nvrtc, cublasLt

        /// The file name before `.so`.
        var baseName: String { self == .nvrtc ? "libnvrtc" : "libcublasLt" }
        /// The variable that overrides the search.
        public var overrideVariable: String { self == .nvrtc ? "NUNCHAKU_NVRTC_PATH" : "NUNCHAKU_CUBLASLT_PATH" }
        /// Folders inside site-packages that hold the library in NVIDIA's wheels, newest layout first.
        var wheelFolders: [String] {
            self == .nvrtc
                ? ["nvidia/cu13/lib", "nvidia/cu12/lib", "nvidia/cuda_nvrtc/lib"]
                : ["nvidia/cu13/lib", "nvidia/cu12/lib", "nvidia/cublas/lib"]
        }
        /// Names handed to the dynamic loader when no file was found.
        var loaderNames: [String] { ["\(baseName).so.13", "\(baseName).so.12", "\(baseName).so"] }
    }

    private let environment: @Sendable (String) -> String?

    /// A search that reads variables through `environment` (the process environment by default).
    public init(environment: @escaping @Sendable (String) -> String? = { Environment.value($0) }) {
        self.environment = environment
    }

    /// Paths (then loader names) to try for `library`, best first.
    public func candidates(for library: Library) -> [String] {
        if let override = environment(library.overrideVariable) {
            if Self.isDirectory(override) { return Self.libraryFiles(named: library.baseName, in: override) }
            return [override]
        }
        let files = directories(for: library).flatMap { Self.libraryFiles(named: library.baseName, in: $0) }
        return Self.unique(files + library.loaderNames)
    }

    /// The folders searched for `library`, in order (for error messages and `doctor`).
    public func directories(for library: Library) -> [String] {
        if let override = environment(library.overrideVariable) { return [override] }
        var folders: [String] = []
        for variable in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environment(variable) { folders += ["\(root)/lib64", "\(root)/lib"] }
        }
        folders.append("/usr/local/cuda/lib64")
        folders += Self.expand("/usr/local/cuda-*/lib64")
        for sitePackages in sitePackagesDirectories() {
            folders += library.wheelFolders.map { "\(sitePackages)/\($0)" }
        }
        return Self.unique(folders).filter(Self.isDirectory)
    }

    /// Every Python site-packages (or dist-packages) folder found in the usual places.
    public func sitePackagesDirectories() -> [String] {
        var patterns: [String] = []
        for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let prefix = environment(variable) { patterns.append("\(prefix)/lib/python3*/site-packages") }
        }
        if let home = environment("HOME") { patterns.append("\(home)/.local/lib/python3*/site-packages") }
        let pyenvRoots = [environment("PYENV_ROOT"), environment("HOME").map { "\($0)/.pyenv" }, "/root/.pyenv"]
        for root in pyenvRoots.compactMap({ $0 }) {
            patterns.append("\(root)/versions/*/lib/python3*/site-packages")
        }
        for prefix in ["/usr/local/lib", "/usr/lib"] {
            patterns += ["\(prefix)/python3*/dist-packages", "\(prefix)/python3*/site-packages"]
        }
        patterns += ["/opt/*/.venv/lib/python3*/site-packages", "/opt/*/venv/lib/python3*/site-packages",
                     "/opt/*/lib/python3*/site-packages"]
        return Self.unique(patterns.flatMap(Self.expand)).filter(Self.isDirectory)
    }

    // MARK: File system helpers

    /// Files in `folder` named `<baseName>.so` or `<baseName>.so.<numbers>`, highest version first.
    static func libraryFiles(named baseName: String, in folder: String) -> [String] {
        let prefix = "\(baseName).so"
        let names = list(folder).filter { name in
            guard name.hasPrefix(prefix) else { return false }
            let suffix = name.dropFirst(prefix.count)
            return suffix.isEmpty || (suffix.first == "." && suffix.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
                .allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) })
        }
        return names.sorted { naturallyDescending($0, $1) }.map { "\(folder)/\($0)" }
    }

    /// The paths matching `pattern`, where a `*` inside a path component matches any run of characters.
    static func expand(_ pattern: String) -> [String] {
        var paths = [pattern.hasPrefix("/") ? "" : "."]
        for component in pattern.split(separator: "/").map(String.init) {
            if component.contains("*") {
                paths = paths.flatMap { base in
                    list(base.isEmpty ? "/" : base)
                        .filter { wildcardMatch(component, $0) }
                        .sorted { naturallyDescending($0, $1) }
                        .map { "\(base)/\($0)" }
                }
            } else {
                paths = paths.map { "\($0)/\(component)" }
            }
        }
        return paths.filter(Environment.fileExists)
    }

    /// Whether `name` matches `pattern`, in which `*` matches any run of characters (including none).
    static func wildcardMatch(_ pattern: String, _ name: String) -> Bool {
        let pieces = pattern.split(separator: "*", omittingEmptySubsequences: false).map(Array.init)
        let characters = Array(name)
        guard let first = pieces.first, characters.starts(with: first) else { return false }
        if pieces.count == 1 { return characters.count == first.count }
        var position = first.count
        for piece in pieces.dropFirst().dropLast() {
            guard let found = firstOccurrence(of: piece, in: characters, from: position) else { return false }
            position = found + piece.count
        }
        let last = pieces.last!
        return characters.count - position >= last.count && characters.suffix(last.count).elementsEqual(last)
    }

    private static func firstOccurrence(of piece: [Character], in characters: [Character], from start: Int) -> Int? {
        guard !piece.isEmpty else { return start }
        guard characters.count - piece.count >= start else { return nil }
        return (start...(characters.count - piece.count)).first { characters[$0..<($0 + piece.count)].elementsEqual(piece) }
    }

    /// Orders names with embedded version numbers highest first (`cuda-12.10` before `cuda-12.9`).
    static func naturallyDescending(_ left: String, _ right: String) -> Bool {
        func parts(_ text: String) -> [(isNumber: Bool, text: Substring)] {
            var result: [(Bool, Substring)] = []
            var start = text.startIndex
            while start < text.endIndex {
                let isNumber = text[start].isNumber
                let end = text[start...].firstIndex { $0.isNumber != isNumber } ?? text.endIndex
                result.append((isNumber, text[start..<end]))
                start = end
            }
            return result
        }
        for (a, b) in zip(parts(left), parts(right)) where a.text != b.text {
            if a.isNumber, b.isNumber, let x = Int(a.text), let y = Int(b.text), x != y { return x > y }
            return a.text > b.text
        }
        return left.count > right.count
    }

    private static func list(_ folder: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    }

    /// Whether `path` is a folder that can be listed (following symbolic links, as `/usr/local/cuda` usually is).
    static func isDirectory(_ path: String) -> Bool {
        (try? FileManager.default.contentsOfDirectory(atPath: path)) != nil
    }

    private static func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }
}
