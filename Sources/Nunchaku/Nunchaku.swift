// The umbrella module: `import Nunchaku` gives the whole public API.
@_exported import NunchakuCore
@_exported import SafeTensors
@_exported import CPUBackend
@_exported import SVDQuant
@_exported import Quantizer
@_exported import CUDABackend
@_exported import SelfTest
@_exported import Models
@_exported import Pipelines
@_exported import ShapesDemo
