# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine: model lifecycle (load once, device/compute-type choice, warm-up), a bounded job queue and
N inference worker threads. Nothing here knows about HTTP; callers get a concurrent Future."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ctranslate2
import numpy as np

from . import audio
from .errors import ApiError, Busy, TimeLimit
from .result import Segment, Transcription, Word
from .settings import Settings

log = logging.getLogger("whisper_api.engine")

_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class Job:
    """One transcription request. ``data`` is the encoded file; decoding happens on a worker."""

    data: bytes
    task: str = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    name: str = "file"
    on_decoded: Callable[[float], None] | None = None  # called with the duration once the audio is valid
    on_segment: Callable[[Segment], None] | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass
class EngineStats:
    """Callbacks the HTTP layer wires to its metrics (the engine stays metrics-agnostic)."""

    on_audio_seconds: Callable[[float], None] = lambda s: None
    on_processing_seconds: Callable[[float], None] = lambda s: None
    on_model_loaded: Callable[[float], None] = lambda s: None


def _gpu_name(index: int) -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, informational only
            [exe, "--query-gpu=name", "--format=csv,noheader", f"--id={index}"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def plan_devices(settings: Settings, cuda_devices: int) -> list[tuple[str, str]]:
    """Ordered (device, compute_type) attempts for the settings and the number of CUDA devices seen."""
    def cpu_type() -> str:
        if settings.compute_type == "auto":
            return "int8"
        supported = ctranslate2.get_supported_compute_types("cpu")
        return settings.compute_type if settings.compute_type in supported else "int8"

    def cuda_type() -> str:
        if settings.compute_type != "auto":
            return settings.compute_type
        supported = ctranslate2.get_supported_compute_types("cuda", settings.device_index)
        for ct in ("float16", "int8_float16", "int8_float32", "float32"):
            if ct in supported:
                return ct
        return "float32"

    if settings.device == "cpu":
        return [("cpu", cpu_type())]
    if settings.device == "cuda":
        if cuda_devices <= settings.device_index:
            raise RuntimeError(
                f"WHISPER_API_DEVICE=cuda but CTranslate2 sees {cuda_devices} CUDA device(s): install the NVIDIA "
                f"driver/CUDA libraries, or set WHISPER_API_DEVICE=auto or cpu"
            )
        return [("cuda", cuda_type())]
    if cuda_devices > settings.device_index:
        return [("cuda", cuda_type()), ("cpu", cpu_type())]
    return [("cpu", cpu_type())]


class Engine:
    def __init__(self, settings: Settings, stats: EngineStats | None = None) -> None:
        self.settings = settings
        self.stats = stats or EngineStats()
        self.state = "loading"
        self.error: str | None = None
        self.device = "unknown"
        self.device_label = "unknown"
        self.compute_type = "unknown"
        self.gpu_available = False
        self.load_seconds: float | None = None
        self.busy = 0
        self._busy_lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=settings.queue_size + settings.workers)
        self._threads: list[threading.Thread] = []
        self._model = None
        self._pipeline = None
        self._stopping = threading.Event()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        t = threading.Thread(target=self._load_then_serve, name="whisper-load", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        for _worker in range(self.settings.workers):
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        # Fail whatever still waits so no caller hangs.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None and not job.future.done():
                job.future.set_exception(Busy("the service is shutting down; retry on another instance"))
        for t in self._threads:
            t.join(timeout=5)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state == "ready"

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _load_then_serve(self) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        s = self.settings
        started = time.monotonic()
        cuda_devices = 0
        try:
            cuda_devices = ctranslate2.get_cuda_device_count()
        except Exception:  # noqa: BLE001 - a broken CUDA install must not stop a CPU service
            cuda_devices = 0
        self.gpu_available = cuda_devices > 0
        errors = []
        try:
            attempts = plan_devices(s, cuda_devices)
        except RuntimeError as exc:
            attempts = []
            errors.append(str(exc))
        for device, compute_type in attempts:
            try:
                model = WhisperModel(
                    s.model,
                    device=device,
                    device_index=s.device_index,
                    compute_type=compute_type,
                    cpu_threads=s.cpu_threads,
                    num_workers=s.workers,
                    download_root=str(s.model_cache_dir) if s.model_cache_dir else None,
                    local_files_only=s.local_files_only,
                )
                # Warm up: proves the device really runs this model (e.g. a CC 5.2 GPU loads but cannot run).
                segs, _info = model.transcribe(np.zeros(audio.SAMPLE_RATE, dtype=np.float32), beam_size=1,
                                               language="en" if not model.model.is_multilingual else None)
                list(segs)
            except Exception as exc:  # noqa: BLE001 - report every failed attempt, try the next device
                errors.append(f"{device}/{compute_type}: {type(exc).__name__}: {exc}")
                log.warning("loading %s on %s/%s failed: %s", s.model, device, compute_type, exc)
                continue
            self._model = model
            if s.batched:
                self._pipeline = BatchedInferencePipeline(model=model)
            self.device = device
            self.compute_type = compute_type
            if device == "cuda":
                name = _gpu_name(s.device_index)
                self.device_label = f"cuda ({name})" if name else f"cuda:{s.device_index}"
            else:
                self.device_label = "cpu"
            break
        if self._model is None:
            self.error = (
                f"could not load model {s.model!r}: " + "; ".join(errors)
                + " (check WHISPER_API_MODEL, WHISPER_API_MODEL_CACHE_DIR, network access to the hub or "
                "WHISPER_API_LOCAL_FILES_ONLY, and WHISPER_API_DEVICE)"
            )
            self.state = "failed"
            log.error("%s", self.error)
            return
        self.load_seconds = time.monotonic() - started
        self.stats.on_model_loaded(self.load_seconds)
        log.info("model %s ready on %s (%s) in %.1f s", s.model, self.device_label, self.compute_type, self.load_seconds)
        for i in range(1, s.workers):
            t = threading.Thread(target=self._worker, name=f"whisper-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.state = "ready"
        # The thread that created the CTranslate2 model must outlive it: when it exits, every later
        # inference costs 3-4x the CPU (measured here: 60 s of audio, 5.9 vs 16-24 CPU-s). So the
        # loader thread becomes worker 0 instead of returning.
        threading.current_thread().name = "whisper-worker-0"
        self._worker()

    # submission --------------------------------------------------------------------------------
    def submit(self, job: Job) -> concurrent.futures.Future:
        if self.state == "loading":
            raise Busy("the model is still loading; retry in a few seconds", headers={"Retry-After": "5"})
        if self.state != "ready":
            raise ApiError(f"the model is not available: {self.error}", status=503, type="server_error",
                           code="model_unavailable")
        # The queue holds `workers` running slots on top of QUEUE_SIZE waiting ones.
        if self._queue.qsize() + self.busy >= self.settings.queue_size + self.settings.workers:
            raise Busy(
                f"all {self.settings.workers} worker(s) are busy and {self.settings.queue_size} request(s) wait "
                "(WHISPER_API_QUEUE_SIZE); retry later",
                headers={"Retry-After": str(self._retry_after())},
            )
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy("the request queue is full; retry later",
                       headers={"Retry-After": str(self._retry_after())}) from None
        return job.future

    def _retry_after(self) -> int:
        return max(1, min(60, (self._queue.qsize() + 1) * 5 // max(1, self.settings.workers)))

    # work --------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while not self._stopping.is_set():
            job = self._queue.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            with self._busy_lock:
                self.busy += 1
            try:
                job.future.set_result(self._run(job))
            except ApiError as exc:
                job.future.set_exception(exc)
            except Exception as exc:  # noqa: BLE001 - surfaced to the caller as a 500
                log.exception("transcription failed")
                job.future.set_exception(exc)
            finally:
                with self._busy_lock:
                    self.busy -= 1

    def _run(self, job: Job) -> Transcription:
        s = self.settings
        started = time.monotonic()
        decoded = audio.decode(job.data, max_duration_s=s.max_duration_s, name=job.name)
        job.data = b""  # free the upload early
        if job.on_decoded:
            job.on_decoded(decoded.duration)
        temperature: float | tuple[float, ...] = job.temperature
        if job.temperature == 0.0 and s.temperature_fallback:
            temperature = _FALLBACK_TEMPERATURES
        kwargs = dict(
            language=job.language,
            task=job.task,
            beam_size=s.beam_size,
            temperature=temperature,
            initial_prompt=job.prompt or None,
            condition_on_previous_text=s.condition_on_previous_text,
            word_timestamps=job.word_timestamps,
            vad_filter=s.vad_filter,
        )
        if self._pipeline is not None:
            kwargs["batch_size"] = s.batch_size
            kwargs["without_timestamps"] = False
            if not s.vad_filter:
                step = 30.0
                kwargs["clip_timestamps"] = [
                    {"start": t, "end": min(t + step, decoded.duration)}
                    for t in np.arange(0.0, decoded.duration, step).tolist()
                ]
            segments_iter, info = self._pipeline.transcribe(decoded.samples, **kwargs)
        else:
            segments_iter, info = self._model.transcribe(decoded.samples, **kwargs)
        deadline = started + s.max_processing_s
        segments: list[Segment] = []
        for i, seg in enumerate(segments_iter):
            if time.monotonic() > deadline:
                raise TimeLimit(
                    f"transcription exceeded the processing time limit of {s.max_processing_s:g} s "
                    f"(WHISPER_API_MAX_PROCESSING_S) after {seg.end:.1f} s of {decoded.duration:.1f} s of audio; "
                    "send shorter audio or raise the limit"
                )
            out = Segment(
                id=i, seek=int(seg.seek), start=float(seg.start), end=float(seg.end), text=seg.text,
                tokens=list(seg.tokens), temperature=float(seg.temperature or 0.0),
                avg_logprob=float(seg.avg_logprob), compression_ratio=float(seg.compression_ratio),
                no_speech_prob=float(seg.no_speech_prob),
                words=[Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in seg.words]
                if seg.words else None,
            )
            segments.append(out)
            if job.on_segment:
                job.on_segment(out)
        if time.monotonic() > deadline:
            raise TimeLimit(
                f"transcription exceeded the processing time limit of {s.max_processing_s:g} s "
                "(WHISPER_API_MAX_PROCESSING_S); send shorter audio or raise the limit"
            )
        elapsed = time.monotonic() - started
        self.stats.on_audio_seconds(decoded.duration)
        self.stats.on_processing_seconds(elapsed)
        return Transcription(task=job.task, language=info.language, duration=decoded.duration,
                             segments=segments, processing_time=elapsed)
