"""A stand-in for the slice of `torch` that gridexp-executor touches, for tests on machines
without CUDA: `torch.cuda`'s memory calls and `torch.OutOfMemoryError`. An experiment.py calls
`install()` to put it in sys.modules as `torch`: the executor looks there and nowhere else
(docs/executor.md, "GPU memory between trials"), so it never needs the real one."""

from __future__ import annotations

import sys
import types


class OutOfMemoryError(RuntimeError):
    """torch.OutOfMemoryError, also torch.cuda.OutOfMemoryError."""


OutOfMemoryError.__module__ = "torch"


class FakeCuda:
    """torch.cuda with `devices` devices; each call is counted or recorded. Device d reports
    (d + 1) times device 0's peak, so a test can tell the highest device's peak from the
    first's."""

    OutOfMemoryError = OutOfMemoryError

    def __init__(self, devices: int = 1) -> None:
        self.devices = devices
        self.initialized = False
        self.allocated = 0
        self.peak = 0
        self.emptied = 0

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return self.devices

    def memory_allocated(self, device: int) -> int:
        return self.allocated if device == 0 else 0

    def reset_peak_memory_stats(self, device: int) -> None:
        self.peak = 0

    def max_memory_allocated(self, device: int) -> int:
        return self.peak * (device + 1)

    def empty_cache(self) -> None:
        self.emptied += 1


class FakeTensor:
    """`size` bytes allocated on device 0 of `cuda` while the object lives."""

    def __init__(self, cuda: FakeCuda, size: int) -> None:
        cuda.initialized = True
        self.cuda = cuda
        self.size = size
        cuda.allocated += size
        cuda.peak = max(cuda.peak, cuda.allocated)

    def __del__(self) -> None:
        self.cuda.allocated -= self.size


def install(devices: int = 1) -> types.ModuleType:
    """A fake `torch` module, now sys.modules["torch"]."""
    torch = types.ModuleType("torch")
    torch.cuda = FakeCuda(devices)
    torch.OutOfMemoryError = OutOfMemoryError
    sys.modules["torch"] = torch
    return torch
