import Testing
import NunchakuCore

/// The Swift copy of the fixture weight generator gives the values the Python script printed.
@Test func generatorMatchesThePythonScript() {
    #expect(GeneratedWeights.fnv1a64("x_embedder.weight") == 0x2619_811F_2E38_39F2)
    let weight = GeneratedWeights.tensor(name: "x_embedder.weight", shape: [2, 3], offset: 0, scale: 0.125, seed: 2024)
    #expect(weight.floats() == [-0.1072322279214859, 0.10569813847541809, 0.0782124400138855,
                                -0.038018614053726196, -0.0005030632019042969, 0.043144240975379944])
    let norm = GeneratedWeights.tensor(name: "a.norm_q.weight", shape: [3], offset: 1, scale: 0.25, seed: 7)
    #expect(norm.floats() == [0.8402552604675293, 1.1644645929336548, 1.1016539335250854])
}
