import NunchakuCore
import Testing
@testable import SafeTensors

/// Writes one tensor of every dtype Python's safetensors can write, with values fixed by the
/// format specifications (not by this engine's code), and describes them in a JSON result.
private let pythonWriter = #"""
import json, sys
import numpy as np
import safetensors

path, result_path = sys.argv[1], sys.argv[2]
keep, specs, expected = [], {}, {}

def add(name, dtype, shape, array, values, header_shape=None):
    array = np.ascontiguousarray(array)
    keep.append(array)
    specs[name] = safetensors.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=array.ctypes.data, data_len=array.nbytes)
    expected[name] = {"dtype": dtype, "shape": list(header_shape or shape), "hex": array.tobytes().hex(),
                      "values": None if values is None else [repr(float(v)) for v in values]}

def native(name, array):
    add(name, array.dtype.name, array.shape, array, array.reshape(-1).tolist())

def raw(name, dtype, shape, data, values, header_shape=None):
    add(name, dtype, shape, np.frombuffer(bytes(data), dtype=np.uint8), values, header_shape)

native("bool", np.array([True, False, True]))
native("i8", np.array([-128, 0, 127], np.int8))
native("u8", np.array([[0, 1], [254, 255]], np.uint8))
native("i16", np.array([-32768, 2, 32767], np.int16))
native("u16", np.array([0, 3, 65535], np.uint16))
native("i32", np.array([-2**31, 4, 2**31 - 1], np.int32))
native("u32", np.array([0, 5, 2**32 - 1], np.uint32))
native("i64", np.array([-2**63, 6, 2**40], np.int64))
native("u64", np.array([0, 7, 2**50], np.uint64))
native("f16", np.array([0.5, -2.0, 65504.0, np.inf, 2.0**-24], np.float16))
native("f32", np.array([[1.5, -0.0], [np.nan, 3.4028234663852886e38]], np.float32))
native("f64", np.array([3.141592653589793, -1e300, 5e-324], np.float64))
native("scalar", np.array(2.5, np.float32))
native("empty", np.zeros((0, 4), np.float32))
add("c64", "complex64", (2,), np.array([1 + 2j, -3.5 + 0j], np.complex64), None)
bf16 = np.array([1.0, -2.5, 3.140625, 65536.0 * 3], np.float32)
raw("bf16", "bfloat16", (2, 2), (bf16.view(np.uint32) >> 16).astype("<u2").tobytes(), bf16.tolist())
raw("f8e4m3", "float8_e4m3fn", (6,), [0x38, 0x40, 0xC0, 0x7E, 0x01, 0x7F], [1, 2, -2, 448, 2.0**-9, float("nan")])
raw("f8e5m2", "float8_e5m2", (6,), [0x3C, 0x40, 0x7B, 0x7C, 0xFC, 0x01], [1, 2, 57344, float("inf"), float("-inf"), 2.0**-16])
raw("f8e8m0", "float8_e8m0fnu", (5,), [0x7F, 0x80, 0x00, 0xFE, 0xFF], [1, 2, 2.0**-127, 2.0**127, float("nan")])
# float4_e2m1fn_x2 storage holds two values per byte; the header counts values, so [1, 3] bytes -> [1, 6].
raw("f4", "float4_e2m1fn_x2", (1, 3), [0x21, 0x43, 0xF7], [0.5, 1, 1.5, 2, 6, -6], header_shape=(1, 6))
raw("f8e4m3fnuz", "float8_e4m3fnuz", (2,), [0x40, 0x80], None)
raw("f8e5m2fnuz", "float8_e5m2fnuz", (2,), [0x3C, 0x80], None)

metadata = {"note": "\u00fc \"quoted\"\n\u0001"}
safetensors.serialize_file(specs, path, metadata=metadata)
with open(result_path, "w") as out:
    json.dump({"tensors": expected, "metadata": metadata}, out)
"""#

/// Reads a file with the reference library and describes what it found.
private let pythonReader = #"""
import json, sys
import numpy as np
import safetensors
from safetensors import safe_open

path, result_path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
tensors = {}
for name, t in safetensors.deserialize(data):
    tensors[name] = {"dtype": t["dtype"], "shape": list(t["shape"]), "hex": bytes(t["data"]).hex()}
numeric = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64"}
with safe_open(path, framework="numpy") as f:
    metadata = f.metadata()
    for name in f.keys():
        if tensors[name]["dtype"] in numeric:
            tensors[name]["values"] = [repr(float(v)) for v in f.get_tensor(name).reshape(-1).tolist()]
with open(result_path, "w") as out:
    json.dump({"tensors": tensors, "metadata": metadata}, out)
"""#

private let pythonCondition = Testing.ConditionTrait.enabled(if: PythonReference.isUsable || PythonReference.isRequired)

@Test(pythonCondition)
func readsEveryDTypeWrittenByPythonSafetensors() throws {
    try #require(PythonReference.isUsable, "NUNCHAKU_CI is set but \(PythonReference.interpreter) lacks numpy or safetensors >= 0.8")
    let folder = try TemporaryFolder()
    let path = folder.file("python.safetensors")
    let expected = try PythonReference.runReturningJSON(pythonWriter, arguments: [path])
    let expectedTensors = try #require(expected["tensors"]?.objectMembers)

    // What `nunchaku inspect --json` reports: names, dtypes, shapes, metadata.
    let checkpoint = try SafeTensorsCheckpoint(path: path)
    let report = try CheckpointReport(checkpoint: checkpoint, formatFields: [], formatJSON: .null).json
    let reported = try #require(report["tensors"]?.arrayElements)
    #expect(Set(reported.compactMap { $0["name"]?.stringValue }) == Set(expectedTensors.map(\.key)))
    #expect(report["files"]?.arrayElements?.first?["metadata"] == expected["metadata"])
    for tensor in reported {
        let name = try #require(tensor["name"]?.stringValue)
        let want = try #require(expectedTensors.first { $0.key == name }?.value)
        let dtype = try #require(SafeTensorsDType(name: tensor["dtype"]?.stringValue ?? ""))
        #expect(tensor["shape"] == want["shape"], "\(name)")
        #expect(tensor["bytes"]?.intValue == want["hex"]?.stringValue.map { $0.utf8.count / 2 }, "\(name)")
        #expect(pythonDTypeNames[dtype] == want["dtype"]?.stringValue, "\(name)")
    }

    // The bytes and values, read through the memory map.
    let file = try SafeTensorsFile(path: path)
    #expect(file.metadata == ["note": "ü \"quoted\"\n\u{1}"])
    for member in expectedTensors {
        #expect(try file.raw(member.key).bytes == bytes(fromHex: member.value["hex"]?.stringValue ?? ""), "\(member.key)")
        if let values = doubles(fromReprs: member.value["values"]) {
            let read = try file.tensor(member.key).doubles()
            #expect(sameValues(read, values), "\(member.key): \(read) != \(values)")
        }
    }

    // Our writer reproduces Python's file byte for byte (one metadata key, so no hash-order question).
    var writer = SafeTensorsWriter(metadata: file.metadata)
    for name in file.tensorNames { try writer.add(name, file.raw(name)) }
    #expect(try writer.serialized() == FileContents.read(path))
}

@Test(pythonCondition)
func pythonSafetensorsReadsEveryDTypeWeWrite() throws {
    try #require(PythonReference.isUsable, "NUNCHAKU_CI is set but \(PythonReference.interpreter) lacks numpy or safetensors >= 0.8")
    let folder = try TemporaryFolder()
    let path = folder.file("swift.safetensors")
    let tensors = try tensorOfEveryDType()
    let metadata = ["format": "pt", "config": "{\"a\": [1, 2]}", "ünï": "line\nbreak \u{7}"]
    var writer = SafeTensorsWriter(metadata: metadata)
    for (name, tensor) in tensors { try writer.add(name, tensor) }
    try writer.add("values", Tensor([1.5, -2, 0.25, 1e30], shape: [2, 2]))
    try writer.add("scalar", RawTensor(dtype: .i64, shape: [], bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]))
    try writer.write(to: path)

    let seen = try PythonReference.runReturningJSON(pythonReader, arguments: [path])
    let seenMetadata = try #require(seen["metadata"]?.objectMembers)
    #expect(Dictionary(uniqueKeysWithValues: seenMetadata.map { ($0.key, $0.value.stringValue ?? "") }) == metadata)
    let seenTensors = try #require(seen["tensors"]?.objectMembers)
    #expect(seenTensors.count == tensors.count + 2)
    for (name, tensor) in tensors {
        let entry = try #require(seenTensors.first { $0.key == name }?.value, "\(name)")
        #expect(entry["dtype"]?.stringValue == tensor.dtype.name)
        #expect(entry["shape"] == .array(tensor.shape.map { .integer($0) }))
        #expect(bytes(fromHex: entry["hex"]?.stringValue ?? "") == tensor.bytes, "\(name)")
        if let values = doubles(fromReprs: entry["values"]) {
            #expect(sameValues(values, try tensor.tensor().doubles()), "\(name)")
        }
    }
    #expect(doubles(fromReprs: seenTensors.first { $0.key == "values" }?.value["values"]) == [1.5, -2, 0.25, Double(Float(1e30))])
    #expect(doubles(fromReprs: seenTensors.first { $0.key == "scalar" }?.value["values"]) == [-1])
}

/// The names Python's safetensors uses for dtypes, keyed by the header names.
private let pythonDTypeNames: [SafeTensorsDType: String] = [
    .bool: "bool", .i8: "int8", .u8: "uint8", .i16: "int16", .u16: "uint16", .i32: "int32", .u32: "uint32",
    .i64: "int64", .u64: "uint64", .f16: "float16", .f32: "float32", .f64: "float64", .bf16: "bfloat16",
    .f8e4m3: "float8_e4m3fn", .f8e5m2: "float8_e5m2", .f8e8m0: "float8_e8m0fnu", .f4: "float4_e2m1fn_x2",
    .f8e4m3fnuz: "float8_e4m3fnuz", .f8e5m2fnuz: "float8_e5m2fnuz", .c64: "complex64",
]
