"""The deterministic weight generator shared by the parity scripts and the Swift tests.

For a tensor called `name` with n elements, element i (row-major) is
    u_i    = splitmix64(fnv1a64(name) XOR seed, i) >> 40          (a 24-bit integer)
    value  = float32(offset + scale * (u_i / 2**23 - 1))         (computed in float64)
with splitmix64(state, i) = mix(state + (i + 1) * 0x9E3779B97F4A7C15) (Steele et al.). The Swift side
(Tests/ModelsTests/Support) reproduces every value bit for bit; with `scale` a power of two the values are exact.
"""
import numpy as np

MASK64 = (1 << 64) - 1


def fnv1a64(text):
    """64-bit FNV-1a of the UTF-8 bytes of `text`."""
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    return h


def splitmix64_stream(state, count):
    """splitmix64 outputs for indices 0..count-1 of `state`, as a uint64 array (wrapping arithmetic)."""
    z = np.uint64(state) + (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def generated_weight(name, shape, offset, scale, seed):
    """The float32 torch tensor of `shape` that the generator gives the tensor called `name`."""
    import torch

    count = int(np.prod(shape)) if shape else 1
    u = (splitmix64_stream(fnv1a64(name) ^ seed, count) >> np.uint64(40)).astype(np.float64)
    values = offset + scale * (u / 2.0**23 - 1.0)
    return torch.from_numpy(values.astype(np.float32).reshape(shape))
