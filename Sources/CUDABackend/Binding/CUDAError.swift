/// Everything that can go wrong reaching a GPU. Each case reads as one line that says what failed and why
/// (a compile failure adds NVRTC's log on the lines after).
public enum CUDAError: Error, Equatable, CustomStringConvertible {
    /// The CUDA driver library could not be loaded or initialised: no driver, a stub library, no device.
    case driverUnavailable(reason: String)
    /// The driver loaded but reports no device (`CUDA_VISIBLE_DEVICES` may hide them all).
    case noDevice(visibleDevices: String?)
    /// A device index outside the devices the driver can see.
    case invalidDevice(index: Int, count: Int, visibleDevices: String?)
    /// A driver call failed: the call, its `CUresult`, and the driver's name and text for it.
    case driverCall(call: String, code: Int32, name: String, message: String)
    /// A device allocation did not fit.
    case outOfMemory(requestedBytes: Int, freeBytes: Int, totalBytes: Int, liveBytes: Int)
    /// No usable NVRTC library was found (every place searched is listed).
    case nvrtcUnavailable(reason: String)
    /// An NVRTC call other than compilation failed.
    case nvrtcCall(call: String, code: Int32, message: String)
    /// NVRTC rejected a kernel source; `log` is NVRTC's program log.
    case compilationFailed(source: String, target: String, log: String)
    /// The GPU's architecture is outside what NVRTC or the kernels support.
    case unsupportedArchitecture(String)
    /// The driver refused a compiled module; `log` is the driver's JIT error log, `hint` a likely cause.
    case moduleLoadFailed(source: String, target: String, driverError: String, log: String, hint: String?)
    /// No kernel of that name is registered, or the loaded module lacks it.
    case kernelNotFound(name: String, detail: String)
    /// A launch or copy was asked with values the runtime rejects before calling the driver.
    case invalidArgument(context: String, reason: String)
    /// A CUDA graph could not be captured or run: what was being captured, and the call or buffer that broke it.
    case graphCapture(context: String, reason: String)

    public var description: String {
        switch self {
        case let .driverUnavailable(reason):
            return "CUDA unavailable: \(reason)"
        case let .noDevice(visible):
            return "CUDA unavailable: the driver sees no GPU\(Self.visibility(visible))"
        case let .invalidDevice(index, count, visible):
            let devices = count == 1 ? "1 device is" : "\(count) devices are"
            return "GPU index \(index) does not exist: \(devices) visible (indices 0..<\(count))\(Self.visibility(visible))"
        case let .driverCall(call, code, name, message):
            return "\(call) failed: \(name) (\(code)): \(message)"
        case let .outOfMemory(requested, free, total, live):
            return "out of GPU memory: asked for \(Self.bytes(requested)), \(Self.bytes(free)) free of \(Self.bytes(total)); "
                + "this process holds \(Self.bytes(live)) in live buffers"
        case let .nvrtcUnavailable(reason):
            return "NVRTC unavailable: \(reason)"
        case let .nvrtcCall(call, code, message):
            return "\(call) failed: \(message) (\(code))"
        case let .compilationFailed(source, target, log):
            return "NVRTC could not compile \(source) for \(target):\n\(log)"
        case let .unsupportedArchitecture(reason):
            return "unsupported GPU architecture: \(reason)"
        case let .moduleLoadFailed(source, target, driverError, log, hint):
            var text = "the driver could not load \(source) built for \(target): \(driverError)"
            if let hint { text += " (\(hint))" }
            if !log.isEmpty { text += "\n\(log)" }
            return text
        case let .kernelNotFound(name, detail):
            return "kernel \(name) not found: \(detail)"
        case let .invalidArgument(context, reason):
            return "\(context): \(reason)"
        case let .graphCapture(context, reason):
            return "CUDA graph capture of \(context) failed: \(reason)"
        }
    }

    private static func visibility(_ visible: String?) -> String {
        visible.map { " (CUDA_VISIBLE_DEVICES=\($0))" } ?? ""
    }

    private static func bytes(_ count: Int) -> String { ByteCountText.describe(count) }
}
