# SPDX-License-Identifier: GPL-3.0-or-later
"""NVML (nvidia-ml-py): the card's name, compute capability and memory for the device decision, and
utilisation, memory and temperature for /metrics. NVML is initialised once; when it cannot be (no
driver, no GPU), every call returns None and one line is logged."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

log = logging.getLogger("whisper_api.gpu")


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.6"
    memory_mib: int


@dataclass(frozen=True)
class GpuSample:
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_celsius: float


class Nvml:
    """One NVML session per process. NVML numbers GPUs in PCI bus order; CUDA does too with
    CUDA_DEVICE_ORDER=PCI_BUS_ID, which the engine sets (when unset) before CUDA starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok: bool | None = None
        self._nvml = None
        self._handles: dict[int, object] = {}

    def _init(self) -> bool:
        with self._lock:
            if self._ok is None:
                try:
                    import pynvml

                    pynvml.nvmlInit()
                    self._nvml = pynvml
                    self._ok = True
                except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
                    self._ok = False
                    log.info("NVML unavailable (no GPU facts or GPU metrics): %s", exc)
            return bool(self._ok)

    def _handle(self, index: int):
        if index not in self._handles:
            self._handles[index] = self._nvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def info(self, index: int) -> GpuInfo | None:
        if not self._init():
            return None
        nv = self._nvml
        try:
            handle = self._handle(index)
            name = nv.nvmlDeviceGetName(handle)
            major, minor = nv.nvmlDeviceGetCudaComputeCapability(handle)
            memory = nv.nvmlDeviceGetMemoryInfo(handle)
        except Exception as exc:  # noqa: BLE001
            log.info("NVML could not describe GPU #%d: %s", index, exc)
            return None
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        return GpuInfo(name=name, compute_capability=f"{major}.{minor}", memory_mib=int(memory.total // (1024 * 1024)))

    def sample(self, index: int) -> GpuSample | None:
        if not self._init():
            return None
        nv = self._nvml
        try:
            handle = self._handle(index)
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            memory = nv.nvmlDeviceGetMemoryInfo(handle)
            temp = nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)
        except Exception as exc:  # noqa: BLE001 - a metrics scrape must never fail on NVML
            log.debug("NVML sample of GPU #%d failed: %s", index, exc)
            return None
        return GpuSample(utilization_percent=float(util.gpu), memory_used_bytes=int(memory.used),
                         memory_total_bytes=int(memory.total), temperature_celsius=float(temp))
