import ArgumentParser
import Nunchaku

@main
struct NunchakuCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nunchaku",
        abstract: "A Swift engine for 4-bit (SVDQuant) diffusion models.",
        subcommands: [
            InspectCommand.self,
            DoctorCommand.self,
            RunTransformerCommand.self,
            SelfTestCommand.self,
            ConvertCommand.self,
            QuantizeCommand.self,
            GenerateCommand.self,
            EvalCommand.self,
            LoRACommand.self,
            BenchCommand.self,
        ]
    )
}
