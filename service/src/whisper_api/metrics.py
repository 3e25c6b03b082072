# SPDX-License-Identifier: GPL-3.0-or-later
"""Prometheus metrics, on a registry per application (tests run several apps in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "whisper_api_requests", "Requests by protocol (http, wyoming), route (HTTP: the path template; "
            "Wyoming: the event, transcribe or describe), method (Wyoming: -) and status (Wyoming: the HTTP status "
            "of the same outcome, 499 for a client gone)", ["protocol", "route", "method", "status"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "whisper_api_audio_seconds", "Seconds of audio transcribed, by protocol", ["protocol"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "whisper_api_processing_seconds", "Decode + inference time per request, by protocol", ["protocol"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=self.registry,
        )
        self.queue_depth = Gauge("whisper_api_queue_depth", "Requests waiting for a worker", registry=self.registry)
        self.busy_workers = Gauge("whisper_api_busy_workers", "Workers running inference", registry=self.registry)
        self.model_load_seconds = Gauge(
            "whisper_api_model_load_seconds", "Time the model took to load and warm up", registry=self.registry
        )
        self.model_ready = Gauge("whisper_api_model_ready", "1 once the model serves requests", registry=self.registry)


class DeviceCollector(Collector):
    """``whisper_api_device_info`` (the device in use, its compute type and the device wanted) and, when
    the device in use is CUDA, the GPU's utilisation, memory and temperature read from NVML at scrape
    time. /metrics runs in a worker thread, so NVML never blocks the event loop."""

    def __init__(self, state: Callable[[], tuple[str, str, str]], gpu_sample: Callable[[], object | None]) -> None:
        self.state, self.gpu_sample = state, gpu_sample

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # unchecked collector: collect() is only called at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        device, compute_type, wanted = self.state()
        info = GaugeMetricFamily("whisper_api_device_info", "Device in use (cpu, cuda, unknown while loading, none after "
                                 "a failed load), its compute type and the device wanted",
                                 labels=["device", "compute_type", "wanted"])
        info.add_metric([device, compute_type, wanted], 1)
        yield info
        if device != "cuda":
            return
        sample = self.gpu_sample()
        if sample is None:
            return
        for name, doc, value in (
            ("whisper_api_gpu_utilization_percent", "GPU utilisation over NVML's last sample period",
             sample.utilization_percent),
            ("whisper_api_gpu_memory_used_bytes", "GPU memory in use (all processes)", sample.memory_used_bytes),
            ("whisper_api_gpu_memory_total_bytes", "GPU memory in all", sample.memory_total_bytes),
            ("whisper_api_gpu_temperature_celsius", "GPU core temperature", sample.temperature_celsius),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
