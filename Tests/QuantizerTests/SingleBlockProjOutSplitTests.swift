import NunchakuCore
import Testing
import Quantizer

@Suite struct SingleBlockProjOutSplitTests {
    @Test func splitsColumnsAndPutsTheBiasOnMLPFC2() throws {
        // proj_out: 2 outputs, 2 attention columns + 3 MLP columns.
        let projOut = LinearWeights(weight: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], bias: [0.5, -1], outFeatures: 2, inFeatures: 5)
        let (outProj, mlpFC2) = try SingleBlockProjOutSplit.split(projOut, hidden: 2)
        #expect(outProj == LinearWeights(weight: [1, 2, 6, 7], bias: [0, 0], outFeatures: 2, inFeatures: 2))
        #expect(mlpFC2 == LinearWeights(weight: [3, 4, 5, 8, 9, 10], bias: [0.5, -1], outFeatures: 2, inFeatures: 3))
    }

    @Test func badSplitsThrow() {
        let projOut = LinearWeights(weight: [1, 2, 3, 4], bias: [0, 0], outFeatures: 2, inFeatures: 2)
        #expect(throws: NunchakuError.self) { try SingleBlockProjOutSplit.split(projOut, hidden: 2) }
        #expect(throws: NunchakuError.self) { try SingleBlockProjOutSplit.split(projOut, hidden: 0) }
        let wrongBias = LinearWeights(weight: [1, 2, 3, 4], bias: [0], outFeatures: 2, inFeatures: 2)
        #expect(throws: NunchakuError.self) { try SingleBlockProjOutSplit.split(wrongBias, hidden: 1) }
    }
}
