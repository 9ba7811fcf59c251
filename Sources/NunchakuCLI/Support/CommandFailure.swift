import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a subcommand's work and turns any error into one readable line on standard error
/// (`nunchaku <command>: <what is wrong>`) and exit status 1, instead of a stack trace.
func reportingFailure(of command: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        let message = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
        let line = Array("nunchaku \(command): \(message)\n".utf8)
        _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        throw ExitCode.failure
    }
}
