import Testing
@testable import ShapesDemo

@Suite struct PairedDifferenceTests {
    @Test func meanStandardErrorAndChangedPromptsByHand() {
        // Differences 2, 0, −1, 3: mean 1; squares about the mean 1 + 1 + 4 + 4 = 10; sd √(10/3); SE sd / 2.
        let difference = PairedDifference([82, 70, 64, 93], reference: [80, 70, 65, 90])
        #expect(difference.mean == 1)
        #expect(abs(difference.standardError - (10.0 / 3).squareRoot() / 2) < 1e-12)
        #expect(difference.changedPrompts == 3)
        #expect(difference.text == "+1.0 ± 0.9 (3)")
    }

    @Test func identicalScoresAndSinglePromptsHaveNoSpread() {
        #expect(PairedDifference([50, 60], reference: [50, 60]) == PairedDifference([1], reference: [1]))
        let single = PairedDifference([40], reference: [55])
        #expect(single.mean == -15 && single.standardError == 0 && single.changedPrompts == 1)
        #expect(single.text == "-15.0 ± 0.0 (1)")
    }
}
