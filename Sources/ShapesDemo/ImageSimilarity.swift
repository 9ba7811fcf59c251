import Foundation
import NunchakuCore
import Pipelines

/// Full-reference image quality between two 8-bit RGB images of one size: PSNR over all channels and SSIM
/// (Wang et al. 2004: 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03, L 255) on the luma (BT.601 weights),
/// averaged over the window positions that fit inside the image.
public enum ImageSimilarity {
    /// 10·log10(255² / MSE) in dB; +∞ for identical images.
    public static func psnr(_ a: RGBImage, _ b: RGBImage) throws -> Double {
        try checkSizes(a, b)
        var sum = 0.0
        for (x, y) in zip(a.pixels, b.pixels) {
            let d = Double(x) - Double(y)
            sum += d * d
        }
        let mse = sum / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// Mean SSIM in [-1, 1]; 1 for identical images.
    public static func ssim(_ a: RGBImage, _ b: RGBImage) throws -> Double {
        try checkSizes(a, b)
        let window = 11, radius = 5
        guard a.width >= window, a.height >= window else {
            throw NunchakuError.invalidArgument(context: "SSIM", reason: "images of \(a.width)×\(a.height) are smaller than the 11×11 window")
        }
        let x = luma(a), y = luma(b)
        let kernel = gaussian(radius: radius, sigma: 1.5)
        let c1 = pow(0.01 * 255, 2.0), c2 = pow(0.03 * 255, 2.0)
        var total = 0.0, count = 0
        for cy in radius..<(a.height - radius) {
            for cx in radius..<(a.width - radius) {
                var mx = 0.0, my = 0.0, xx = 0.0, yy = 0.0, xy = 0.0
                for dy in -radius...radius {
                    for dx in -radius...radius {
                        let w = kernel[dy + radius] * kernel[dx + radius]
                        let index = (cy + dy) * a.width + cx + dx
                        let u = x[index], v = y[index]
                        mx += w * u
                        my += w * v
                        xx += w * u * u
                        yy += w * v * v
                        xy += w * u * v
                    }
                }
                let vx = xx - mx * mx, vy = yy - my * my, cov = xy - mx * my
                total += ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
                count += 1
            }
        }
        return total / Double(count)
    }

    private static func checkSizes(_ a: RGBImage, _ b: RGBImage) throws {
        guard a.width == b.width, a.height == b.height else {
            throw NunchakuError.shapeMismatch(context: "image comparison", expected: [a.height, a.width], actual: [b.height, b.width])
        }
    }

    private static func luma(_ image: RGBImage) -> [Double] {
        (0..<(image.width * image.height)).map { i -> Double in
            let r = Double(image.pixels[3 * i]), g = Double(image.pixels[3 * i + 1]), b = Double(image.pixels[3 * i + 2])
            return 0.299 * r + 0.587 * g + 0.114 * b
        }
    }

    private static func gaussian(radius: Int, sigma: Double) -> [Double] {
        let raw = (-radius...radius).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let sum = raw.reduce(0, +)
        return raw.map { $0 / sum }
    }
}
