import Pipelines
import ShapesDemo
import Testing

struct ShapesSceneTests {
    @Test func parsesALoneGroup() throws {
        let scene = try ShapesScene(prompt: "a red circle on a blue background")
        #expect(scene == ShapesScene(groups: [ShapesGroup(count: 1, color: .red, shape: .circle)], relation: nil, background: .blue))
        #expect(scene.regions == [.canvas])
    }

    @Test func parsesRelationsSizesPluralsAndArticles() throws {
        let scene = try ShapesScene(prompt: "Two large red circles to the left of an orange  triangle on an orange background")
        #expect(scene.groups == [ShapesGroup(count: 2, size: .large, color: .red, shape: .circle),
                                 ShapesGroup(count: 1, color: .orange, shape: .triangle)])
        #expect(scene.relation == .leftOf)
        #expect(scene.background == .orange)
        #expect(scene.regions == [ShapesRegion(x0: 0, y0: 0, x1: 0.5, y1: 1), ShapesRegion(x0: 0.5, y0: 0, x1: 1, y1: 1)])
        let below = try ShapesScene(prompt: "three small gray squares below a yellow square on a black background")
        #expect(below.relation == .below)
        #expect(below.groups[0] == ShapesGroup(count: 3, size: .small, color: .gray, shape: .square))
        #expect(below.regions[0] == ShapesRegion(x0: 0, y0: 0.5, x1: 1, y1: 1))
    }

    @Test func rejectsWhatTheGrammarDoesNotHave() {
        for prompt in ["a red circle", "a red hexagon on a blue background", "a red circle beside a blue square on a white background",
                       "a red circle above a blue square twice on a white background", "a cyan circle on a blue background",
                       "four red circles on a blue background", "a red circle on a teal background", ""] {
            #expect(throws: (any Error).self, "\(prompt)") { try ShapesScene(prompt: prompt) }
        }
    }

    @Test func checkerNeedsDistinctColours() throws {
        let scene = try ShapesScene(prompt: "a red circle above a red square on a blue background")
        let image = try solidImage(width: 16, height: 16, color: .blue)
        #expect(throws: (any Error).self) { try ShapesChecker.check(image, scene: scene) }
    }

    @Test func checkerOnAHandDrawnScene() throws {
        // A 40×40 white canvas with a red 10×10 square in the top half and nothing else.
        var image = try solidImage(width: 40, height: 40, color: .white)
        image = try paint(image, x: 15..<25, y: 5..<15, color: .red)
        let right = try ShapesChecker.check(image, scene: ShapesScene(prompt: "a red square above a blue circle on a white background"))
        // background 10 + no extras 10 + red group 40 (all of it) + blue group 0.
        #expect(abs(right.score - 60) < 1e-9)
        #expect(right.groups[0].found == 1 && right.groups[0].rightShape == 1 && right.groups[0].inRegion == 1)
        let wrongShape = try ShapesChecker.check(image, scene: ShapesScene(prompt: "a red circle on a white background"))
        #expect(abs(wrongShape.score - (20 + 80 * 0.75)) < 1e-9)
    }
}

func solidImage(width: Int, height: Int, color: ShapesColor) throws -> RGBImage {
    let rgb = color.rgb
    return try RGBImage(width: width, height: height,
                        pixels: (0..<(width * height)).flatMap { _ in [UInt8(rgb.r), UInt8(rgb.g), UInt8(rgb.b)] })
}

func paint(_ image: RGBImage, x: Range<Int>, y: Range<Int>, color: ShapesColor) throws -> RGBImage {
    var pixels = image.pixels
    let rgb = color.rgb
    for row in y {
        for column in x {
            let index = 3 * (row * image.width + column)
            (pixels[index], pixels[index + 1], pixels[index + 2]) = (UInt8(rgb.r), UInt8(rgb.g), UInt8(rgb.b))
        }
    }
    return try RGBImage(width: image.width, height: image.height, pixels: pixels)
}
