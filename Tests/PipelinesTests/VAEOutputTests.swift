import Foundation
import Testing
import NunchakuCore
@testable import Pipelines

/// Decoder output → 8-bit RGB: diffusers' post-processing, hand-computed.
struct VAEOutputTests {
    @Test func postProcessingMatchesDiffusers() throws {
        // One 1×4 image per channel plane: values -1, 0, 1, beyond the range, and a rounding tie.
        let red: [Float] = [-1, 0, 1, 3]            // → 0, 127.5 → 128 (half to even), 255, clamp 255
        let green: [Float] = [-7, -0.2, 0.5, 1e-3]  // → clamp 0, 0.4·255 = 102, 0.75·255 = 191.25 → 191, 127.63… → 128
        let blue: [Float] = [1 / 255 - 1, 0.9, -0.9, -1.5] // 0.49999997 → 0, 0.95·255 = 242.25 → 242, 12.75 → 13, 0
        let tensor = Tensor(red + green + blue, shape: [1, 3, 1, 4])
        let images = try RGBImage.images(fromDecoded: tensor)
        #expect(images.count == 1)
        #expect(images[0].width == 4 && images[0].height == 1)
        #expect(images[0].pixels == [0, 0, 0, 128, 102, 242, 255, 191, 13, 255, 128, 0])
    }

    @Test func batchAndRowOrderArePreserved() throws {
        // Two samples of 2×3; sample s, channel c, pixel p holds a distinct value.
        var values = [Float]()
        for sample in 0..<2 {
            for channel in 0..<3 {
                for pixel in 0..<6 { values.append(Float(sample * 18 + channel * 6 + pixel) / 255 * 2 - 1) }
            }
        }
        let images = try RGBImage.images(fromDecoded: Tensor(values, shape: [2, 3, 2, 3], dtype: .bf16))
        #expect(images.map(\.height) == [2, 2] && images.map(\.width) == [3, 3])
        // bf16 rounds the inputs, so compare each byte with the rounded expectation ±1.
        for (sample, image) in images.enumerated() {
            for pixel in 0..<6 {
                for channel in 0..<3 {
                    let expected = sample * 18 + channel * 6 + pixel
                    #expect(abs(Int(image.pixels[pixel * 3 + channel]) - expected) <= 1, "sample \(sample) pixel \(pixel) channel \(channel)")
                }
            }
        }
    }

    @Test func badDecoderOutputIsRejected() {
        #expect(throws: NunchakuError.self) { try RGBImage.images(fromDecoded: Tensor(zeros: [1, 4, 2, 2], dtype: .f32)) }
        #expect(throws: NunchakuError.self) { try RGBImage.images(fromDecoded: Tensor(zeros: [3, 2, 2], dtype: .f32)) }
        #expect(throws: NunchakuError.self) { try RGBImage.images(fromDecoded: Tensor(zeros: [1, 3, 2, 2], dtype: .i32)) }
        #expect(throws: NunchakuError.self) {
            try RGBImage.images(fromDecoded: Tensor([0, .nan, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], shape: [1, 3, 2, 2]))
        }
        #expect(throws: NunchakuError.self) { try RGBImage(width: 2, height: 2, pixels: [0, 0, 0]) }
    }
}
