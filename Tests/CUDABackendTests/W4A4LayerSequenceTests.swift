@testable import CUDABackend
import Testing

/// How the fast W4A4 weight prefetcher learns a model's layer order (`W4A4LayerSequence`): which calls may take
/// prefetched weights and which layer each call may prefetch.
@Suite struct W4A4LayerSequenceTests {
    private final class Layer {}

    private typealias Visit = W4A4LayerSequence.Visit

    @Test func learnsTheOrderAfterOneForwardAndPrefetchesWithinEachForward() {
        let objects = (0..<3).map { _ in Layer() }  // alive, so their identifiers stay distinct
        let layers = objects.map(ObjectIdentifier.init)
        var sequence = W4A4LayerSequence()
        // First forward: learning; nothing in order, nothing to prefetch.
        for layer in layers { #expect(sequence.visit(layer) == Visit(inOrder: false, successor: nil)) }
        #expect(sequence.order.isEmpty)
        // Later forwards: each call names its successor's index; the last names none (nothing left in flight).
        for _ in 0..<2 {
            #expect(sequence.visit(layers[0]) == Visit(inOrder: true, successor: 1))
            #expect(sequence.visit(layers[1]) == Visit(inOrder: true, successor: 2))
            #expect(sequence.visit(layers[2]) == Visit(inOrder: true, successor: nil))
        }
        #expect(sequence.order == layers)
        withExtendedLifetime(objects) {}
    }

    @Test func aCallOutOfOrderForgetsTheOrderAndLearnsAgain() {
        let objects = (0..<3).map { _ in Layer() }
        let layers = objects.map(ObjectIdentifier.init)
        var sequence = W4A4LayerSequence()
        for layer in layers + [layers[0]] { _ = sequence.visit(layer) }
        #expect(sequence.order == layers)
        // Skipping layer 1: out of order.
        #expect(sequence.visit(layers[2]) == Visit(inOrder: false, successor: nil))
        #expect(sequence.order.isEmpty)
        // A new forward [0, 2] is learned from layer 2 on: [2, 0] is the cycle.
        #expect(sequence.visit(layers[0]) == Visit(inOrder: false, successor: nil))
        #expect(sequence.visit(layers[2]) == Visit(inOrder: true, successor: 1))
        #expect(sequence.order == [layers[2], layers[0]])
        withExtendedLifetime(objects) {}
    }

    @Test func aLayerRepeatedInsideTheRecordingRestartsIt() {
        let objects = (0..<3).map { _ in Layer() }
        let layers = objects.map(ObjectIdentifier.init)
        var sequence = W4A4LayerSequence()
        for layer in [layers[0], layers[1], layers[2], layers[1]] { #expect(!sequence.visit(layer).inOrder) }
        #expect(sequence.order.isEmpty)
        _ = sequence.visit(layers[2])
        #expect(sequence.visit(layers[1]) == Visit(inOrder: true, successor: 1))
        #expect(sequence.order == [layers[1], layers[2]])
        withExtendedLifetime(objects) {}
    }

    @Test func oneLayerRepeatedHasNoSuccessor() {
        let object = Layer()
        var sequence = W4A4LayerSequence()
        #expect(!sequence.visit(ObjectIdentifier(object)).inOrder)
        for _ in 0..<3 { #expect(sequence.visit(ObjectIdentifier(object)) == Visit(inOrder: true, successor: nil)) }
        sequence.reset()
        #expect(!sequence.visit(ObjectIdentifier(object)).inOrder)
    }
}
