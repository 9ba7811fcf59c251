import ArgumentParser
import Nunchaku

/// `nunchaku inspect PATH`: what a checkpoint holds and which format it is in.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a checkpoint's format, metadata and tensors.",
        discussion: """
            PATH is a .safetensors file, a sharded checkpoint's .safetensors.index.json, or a folder \
            (holding an index, or .safetensors files read together, such as Nunchaku's legacy \
            transformer_blocks + unquantized_layers pair).

            The format is one of: dense (BF16/FP16) model, Nunchaku SVDQuant merged file, Nunchaku \
            legacy folder, diffusers Nunchaku-Lite folder, canonical SVDQuant (this engine's layout), \
            or LoRA. Precision, group size and rank come from the quantization config, or are inferred \
            from the tensors when it is missing.

            Tensors are summarised per module, with numbered blocks folded into one line per \
            parameter (blocks.*.attn.to_q.weight); --all lists every tensor.
            """
    )

    @Argument(help: "A .safetensors file, a .safetensors.index.json, or a checkpoint folder.")
    var path: String

    @Flag(name: [.customLong("all"), .customLong("tensors")],
          help: "List every tensor (and whole metadata values) instead of a summary per module.")
    var listAll = false

    @Flag(help: "Print the report as JSON (always with every tensor and whole metadata values).")
    var json = false

    func run() throws {
        try reportingFailure(of: "inspect") {
            let checkpoint = try SafeTensorsCheckpoint(path: path)
            let format: (fields: [ReportField], json: JSONValue)
            do {
                let detected = try detectCheckpointFormat(checkpoint)
                format = (detected.reportFields, detected.jsonValue)
            } catch let error as CheckpointFormatError {
                // The tensors are still worth showing when only a config is malformed.
                format = ([ReportField("format", "unknown: \(error)")],
                          .object([JSONMember("kind", .string("unknown")), JSONMember("error", .string("\(error)"))]))
            }
            let report = try CheckpointReport(checkpoint: checkpoint, formatFields: format.fields, formatJSON: format.json)
            print(json ? report.json.serialized(pretty: true) : report.text(listAll: listAll), terminator: json ? "\n" : "")
            if !json, case .lora? = try? detectCheckpointFormat(checkpoint) { print(LoRASummary.forInspect(path)) }
        }
    }
}
