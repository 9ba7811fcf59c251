import Foundation
import Pipelines
import ShapesDemo
import Testing

struct ImageSimilarityTests {
    @Test func psnrHandComputed() throws {
        let a = try RGBImage(width: 4, height: 4, pixels: (0..<48).map { UInt8($0 * 5) })
        var pixels = a.pixels
        pixels[7] &+= 12   // one channel value off by 12: MSE = 144 / 48 = 3
        let b = try RGBImage(width: 4, height: 4, pixels: pixels)
        #expect(abs(try ImageSimilarity.psnr(a, b) - 10 * log10(255.0 * 255.0 / 3)) < 1e-9)
        #expect(try ImageSimilarity.psnr(a, a) == .infinity)
        let other = try RGBImage(width: 2, height: 8, pixels: a.pixels)
        #expect(throws: (any Error).self) { try ImageSimilarity.psnr(a, other) }
    }

    @Test func ssimOfConstantImagesHasAClosedForm() throws {
        // Flat images: variances and covariance vanish, SSIM = (2·μa·μb + C1) / (μa² + μb² + C1).
        let a = try RGBImage(width: 16, height: 16, pixels: [UInt8](repeating: 100, count: 16 * 16 * 3))
        let b = try RGBImage(width: 16, height: 16, pixels: [UInt8](repeating: 120, count: 16 * 16 * 3))
        let c1 = (0.01 * 255) * (0.01 * 255)
        let expected = (2 * 100.0 * 120 + c1) / (100.0 * 100 + 120.0 * 120 + c1)
        #expect(abs(try ImageSimilarity.ssim(a, b) - expected) < 1e-9)
        #expect(abs(try ImageSimilarity.ssim(a, a) - 1) < 1e-12)
    }

    @Test func ssimFallsWithNoise() throws {
        var state: UInt64 = 12345
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let a = try RGBImage(width: 24, height: 24, pixels: (0..<(24 * 24 * 3)).map { _ in next() })
        let slightly = try RGBImage(width: 24, height: 24, pixels: a.pixels.map { $0 / 2 &+ 60 })
        let unrelated = try RGBImage(width: 24, height: 24, pixels: (0..<(24 * 24 * 3)).map { _ in next() })
        let near = try ImageSimilarity.ssim(a, slightly), far = try ImageSimilarity.ssim(a, unrelated)
        #expect(near > 0.5 && near < 1)
        #expect(abs(far) < 0.2)
        let small = try RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 0, count: 192))
        #expect(throws: (any Error).self) { try ImageSimilarity.ssim(small, small) }
    }
}
