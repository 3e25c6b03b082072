# SPDX-License-Identifier: GPL-3.0-or-later
"""Prometheus metrics, on a registry per application (tests run several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "whisper_api_requests", "HTTP requests by route and status", ["route", "method", "status"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "whisper_api_audio_seconds", "Seconds of audio transcribed", registry=self.registry
        )
        self.processing_seconds = Histogram(
            "whisper_api_processing_seconds", "Decode + inference time per request",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=self.registry,
        )
        self.queue_depth = Gauge("whisper_api_queue_depth", "Requests waiting for a worker", registry=self.registry)
        self.busy_workers = Gauge("whisper_api_busy_workers", "Workers running inference", registry=self.registry)
        self.model_load_seconds = Gauge(
            "whisper_api_model_load_seconds", "Time the model took to load and warm up", registry=self.registry
        )
        self.model_ready = Gauge("whisper_api_model_ready", "1 once the model serves requests", registry=self.registry)
