import NunchakuCore
import SafeTensors
import Testing
@testable import Pipelines

/// FlowMatchEulerScheduler against diffusers (fixture: scripts/parity/pipeline_scheduler_fixtures.py), bitwise.
struct SchedulerTests {
    static let configurations: [String: FlowMatchSchedulerConfiguration] = [
        "flux-dev": .fluxDev,
        "flux-schnell": .fluxSchnell,
        "shift-3": FlowMatchSchedulerConfiguration(shifting: .constant(shift: 3.0)),
        "linear": FlowMatchSchedulerConfiguration(shifting: .dynamic(
            baseShift: 0.5, maxShift: 1.15, baseSequenceLength: 256, maxSequenceLength: 4096, exponential: false)),
    ]

    static func floats(_ value: JSONValue?) throws -> [Float] {
        try #require(value?.intArray).map { Float(bitPattern: UInt32($0)) }
    }

    @Test func schedulesMatchDiffusersBitwise() throws {
        let fixture = try FixtureFiles.json("scheduler.json")
        let schedules = try #require(fixture["schedules"]?.arrayElements)
        #expect(schedules.count == 140)
        for case_ in schedules {
            let name = try #require(case_["config"]?.stringValue)
            let configuration = try #require(Self.configurations[name])
            let steps = try #require(case_["steps"]?.intValue)
            let tokens = try #require(case_["image_seq_len"]?.intValue)
            let scheduler = try FlowMatchEulerScheduler(configuration: configuration, stepCount: steps,
                                                        imageSequenceLength: tokens)
            let label = "\(name) \(steps) steps, \(tokens) tokens"
            #expect(scheduler.sigmas.map(\.bitPattern) == (try Self.floats(case_["sigmas"])).map(\.bitPattern), "\(label)")
            #expect(scheduler.timesteps.map(\.bitPattern) == (try Self.floats(case_["timesteps"])).map(\.bitPattern), "\(label)")
            #expect(FlowMatchEulerScheduler.mu(imageSequenceLength: tokens) == case_["mu"]?.numberValue, "\(label)")
        }
    }

    @Test func stepsMatchDiffusersBitwise() throws {
        let fixture = try FixtureFiles.json("scheduler.json")
        let scheduler = try FlowMatchEulerScheduler(configuration: .fluxDev, stepCount: 28, imageSequenceLength: 4096)
        let steps = try #require(fixture["steps"]?.arrayElements)
        #expect(steps.count == 9)
        for case_ in steps {
            let dtype = try #require(DType(rawValue: case_["dtype"]?.stringValue ?? ""))
            let index = try #require(case_["index"]?.intValue)
            var sample = try Self.floats(case_["sample"])
            try scheduler.step(&sample, velocity: try Self.floats(case_["velocity"]), index: index, precision: dtype)
            #expect(sample.map(\.bitPattern) == (try Self.floats(case_["expected"])).map(\.bitPattern), "\(dtype) step \(index)")
        }
    }

    @Test func knownSchedules() throws {
        // research/diffusion-architectures.md §2.3: schnell 4 steps, and dev 512² 4 steps (mu 0.63).
        let schnell = try FlowMatchEulerScheduler(configuration: .fluxSchnell, stepCount: 4, imageSequenceLength: 4096)
        #expect(schnell.sigmas == [1, 0.75, 0.5, 0.25, 0])
        #expect(schnell.timesteps == [1000, 750, 500, 250])
        let dev = try FlowMatchEulerScheduler(configuration: .fluxDev, stepCount: 4, imageSequenceLength: 1024)
        #expect(abs(try #require(dev.mu) - 0.63) < 1e-12)
        for (value, expected) in zip(dev.sigmas, [1, 0.849235, 0.652489, 0.384945, 0] as [Float]) {
            #expect(abs(value - expected) < 1e-6)
        }
    }

    @Test func configurationFromJSON() throws {
        let dev = #"""
            {"_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
             "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 3.0,
             "use_dynamic_shifting": true}
            """#
        #expect(try FlowMatchSchedulerConfiguration(json: try JSONValue.parse(Array(dev.utf8))) == .fluxDev)
        let schnell = #"{"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": false}"#
        #expect(try FlowMatchSchedulerConfiguration(json: try JSONValue.parse(Array(schnell.utf8))) == .fluxSchnell)
        let karras = #"{"use_dynamic_shifting": false, "use_karras_sigmas": true}"#
        #expect(throws: NunchakuError.unsupported(context: "scheduler_config.json.use_karras_sigmas",
                                                  reason: "use_karras_sigmas is not implemented")) {
            try FlowMatchSchedulerConfiguration(json: try JSONValue.parse(Array(karras.utf8)))
        }
    }

    @Test func badStepArguments() throws {
        let scheduler = try FlowMatchEulerScheduler(configuration: .fluxSchnell, stepCount: 2, imageSequenceLength: 16)
        var sample: [Float] = [1, 2]
        #expect(throws: NunchakuError.self) { try scheduler.step(&sample, velocity: [1, 2], index: 2) }
        #expect(throws: NunchakuError.self) { try scheduler.step(&sample, velocity: [1], index: 0) }
        #expect(throws: NunchakuError.self) { try scheduler.step(&sample, velocity: [1, 2], index: 0, precision: .i8) }
        #expect(throws: NunchakuError.self) {
            _ = try FlowMatchEulerScheduler(configuration: .fluxSchnell, stepCount: 0, imageSequenceLength: 16)
        }
    }
}
