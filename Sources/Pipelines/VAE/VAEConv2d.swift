import CPUBackend
import Models
import NunchakuCore

/// A stride-1 2-D convolution with "same" zero padding (`kernel / 2`) and a bias, as the VAE's `nn.Conv2d(…, 3, padding=1)`
/// and 1×1 convolutions.
///
/// Computed as im2col + GEMM: for a band of output pixels, each pixel's `k×k×C` input patch becomes one row, and
/// `Matmul.multiplyTransposed(patches, weight)` gives the band's `[pixels, outChannels]` output directly in the
/// channels-last layout. Bands keep the patch matrix near 32 MB whatever the image size.
struct VAEConv2d {
    let name: String
    let inChannels: Int
    let outChannels: Int
    let kernel: Int
    /// `[out, ky, kx, in]` (PyTorch's `[out, in, ky, kx]` permuted so a patch row is nine contiguous pixel copies).
    private let weight: [Float]
    private let bias: [Float]

    /// Reads `<name>.weight` `[out, in, kernel, kernel]` and `<name>.bias` `[out]` through `weights`.
    init(_ name: String, inChannels: Int, outChannels: Int, kernel: Int, weights: WeightReader, precision: VAEPrecision) throws {
        self.name = name
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        let torchWeight = try parameterValues(weights, "\(name).weight", shape: [outChannels, inChannels, kernel, kernel], precision)
        var permuted = [Float](repeating: 0, count: torchWeight.count)
        let taps = kernel * kernel
        for out in 0..<outChannels {
            for channel in 0..<inChannels {
                for tap in 0..<taps {
                    permuted[(out * taps + tap) * inChannels + channel] = torchWeight[(out * inChannels + channel) * taps + tap]
                }
            }
        }
        weight = permuted
        bias = try parameterValues(weights, "\(name).bias", shape: [outChannels], precision)
    }

    func callAsFunction(_ input: FeatureMap, precision: VAEPrecision) throws -> FeatureMap {
        guard input.channels == inChannels else {
            throw NunchakuError.invalidArgument(context: name, reason: "expects \(inChannels) input channels, got \(input.channels)")
        }
        let pixels = input.pixelCount
        let patchLength = kernel * kernel * inChannels
        let bandPixels = max(64, min(pixels, (8 << 20) / patchLength))
        var output = [Float](repeating: 0, count: pixels * outChannels)
        var patches = [Float](repeating: 0, count: bandPixels * patchLength)
        input.values.withUnsafeBufferPointer { source in
            weight.withUnsafeBufferPointer { weight in
                output.withUnsafeMutableBufferPointer { output in
                    patches.withUnsafeMutableBufferPointer { patches in
                        var first = 0
                        while first < pixels {
                            let count = min(bandPixels, pixels - first)
                            gatherPatches(source, input, firstPixel: first, count: count, into: patches.baseAddress!)
                            Matmul.multiplyTransposed(
                                patches.baseAddress!, weight.baseAddress!, into: output.baseAddress! + first * outChannels,
                                m: count, n: outChannels, k: patchLength)
                            first += count
                        }
                    }
                }
            }
        }
        output.withUnsafeMutableBufferPointer { output in
            forChunks(of: pixels) { range in
                for pixel in range {
                    for channel in 0..<outChannels {
                        let index = pixel * outChannels + channel
                        output[index] = precision.round(output[index] + bias[channel])
                    }
                }
            }
        }
        return FeatureMap(height: input.height, width: input.width, channels: outChannels, values: output)
    }

    /// Writes the `count` patch rows of pixels `firstPixel…` (row-major over the image): tap (ky, kx) of pixel (y, x)
    /// is the input pixel (y + ky − pad, x + kx − pad), or zeros outside the image.
    private func gatherPatches(
        _ source: UnsafeBufferPointer<Float>, _ input: FeatureMap, firstPixel: Int, count: Int,
        into patches: UnsafeMutablePointer<Float>
    ) {
        let pad = kernel / 2, channels = inChannels, patchLength = kernel * kernel * channels
        parallelFor((count + 63) / 64) { block in
            for row in (block * 64)..<min(count, block * 64 + 64) {
                let pixel = firstPixel + row
                let y = pixel / input.width, x = pixel % input.width
                var destination = patches + row * patchLength
                for ky in 0..<kernel {
                    let sourceY = y + ky - pad
                    for kx in 0..<kernel {
                        let sourceX = x + kx - pad
                        if sourceY >= 0, sourceY < input.height, sourceX >= 0, sourceX < input.width {
                            destination.update(from: source.baseAddress! + (sourceY * input.width + sourceX) * channels, count: channels)
                        } else {
                            destination.update(repeating: 0, count: channels)
                        }
                        destination += channels
                    }
                }
            }
        }
    }
}

/// The values of parameter `name` (which must have `shape` and a float dtype), rounded to `precision`, as `Float`s.
/// Problems are recorded by the reader (zeros stand in), which lists them all when loading finishes.
func parameterValues(_ weights: WeightReader, _ name: String, shape: [Int], _ precision: VAEPrecision) throws -> [Float] {
    let tensor = weights.tensor(name, shape: shape, dtypes: [.f32, .bf16, .f16, .f64])
    let widened = tensor.dtype == .f64 ? tensor.converted(to: .f32) : tensor
    var values = try widened.floatValues(context: name)
    if widened.dtype != .bf16 { precision.round(&values) }
    return values
}
