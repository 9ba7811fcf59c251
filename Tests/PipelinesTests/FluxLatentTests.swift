import NunchakuCore
import SafeTensors
import Testing
@testable import Pipelines

/// Latent geometry, packing and position ids against diffusers' FluxPipeline
/// (fixture: scripts/parity/pipeline_latent_fixtures.py).
struct FluxLatentTests {
    @Test func matchesDiffusers() throws {
        let cases = try #require(try FixtureFiles.json("latents.json")["cases"]?.arrayElements)
        #expect(cases.count == 10)
        var packedCases = 0
        for case_ in cases {
            let geometry = try FluxLatentGeometry(height: try #require(case_["height"]?.intValue),
                                                  width: try #require(case_["width"]?.intValue))
            let batch = try #require(case_["batch"]?.intValue)
            let label = "\(geometry.height)×\(geometry.width) batch \(batch)"
            #expect(geometry.noiseShape(batch: batch) == case_["latent_shape"]?.intArray, "\(label)")
            let ids = FluxLatentPacking.imagePositionIDs(geometry: geometry)
            #expect(ids.shape == case_["image_ids_shape"]?.intArray, "\(label)")
            guard let expectedPacked = case_["packed"]?.intArray else { continue }
            packedCases += 1
            let shape = geometry.noiseShape(batch: batch)
            let latents = Tensor((0..<shape.reduce(1, *)).map(Float.init), shape: shape)
            let packed = try FluxLatentPacking.pack(latents)
            #expect(packed.shape == case_["packed_shape"]?.intArray, "\(label)")
            #expect(packed.shape == geometry.packedShape(batch: batch), "\(label)")
            #expect(packed.floats() == expectedPacked.map(Float.init), "\(label)")
            let unpacked = try FluxLatentPacking.unpack(packed, geometry: geometry)
            #expect(unpacked.shape == shape && unpacked.floats() == latents.floats(), "\(label)")
            #expect(ids.floats() == case_["image_ids"]?.intArray?.map(Float.init), "\(label)")
        }
        #expect(packedCases == 6)
    }

    @Test func packingKeepsTheDtype() throws {
        let latents = Tensor((0..<(16 * 2 * 2)).map(Float.init), shape: [1, 16, 2, 2], dtype: .bf16)
        let packed = try FluxLatentPacking.pack(latents)
        #expect(packed.dtype == .bf16)
        #expect(packed.shape == [1, 1, 64])
        #expect(Array(packed.floats().prefix(8)) == [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(FluxLatentPacking.textPositionIDs(count: 512).shape == [512, 3])
        #expect(FluxLatentPacking.textPositionIDs(count: 4).floats().allSatisfy { $0 == 0 })
    }

    @Test func badShapesAreRejected() throws {
        #expect(throws: NunchakuError.self) { _ = try FluxLatentGeometry(height: 8, width: 64) }
        #expect(throws: NunchakuError.self) { _ = try FluxLatentPacking.pack(Tensor(zeros: [1, 16, 3, 4], dtype: .f32)) }
        #expect(throws: NunchakuError.self) { _ = try FluxLatentPacking.pack(Tensor(zeros: [16, 4, 4], dtype: .f32)) }
        let geometry = try FluxLatentGeometry(height: 64, width: 64)
        #expect(throws: NunchakuError.self) {
            _ = try FluxLatentPacking.unpack(Tensor(zeros: [1, 15, 64], dtype: .f32), geometry: geometry)
        }
    }
}
