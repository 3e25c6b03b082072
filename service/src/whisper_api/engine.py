# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine: model lifecycle (load once, device/compute-type choice, warm-up), a bounded job queue and
N inference worker threads, each decoding one request at a time or, with BATCHED, batches of windows
from every waiting request (``batching.Scheduler``). Nothing here knows about HTTP; callers get a
concurrent Future, which they may cancel until the result is set."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ctranslate2
import numpy as np

from . import audio, cuda_runtime, gpu
from .batching import DecodeOptions, Scheduler
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
    protocol: str = "http"  # who asked (http, wyoming): the metrics' protocol label
    max_processing_s: float | None = None  # this request's time limit; None: WHISPER_API_MAX_PROCESSING_S
    on_decoded: Callable[[float], None] | None = None  # called with the duration once the audio is valid
    on_segment: Callable[[Segment], None] | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass
class EngineStats:
    """Callbacks the app wires to its metrics (the engine stays metrics-agnostic): the audio and
    processing seconds of each finished request, with the protocol it came by (Job.protocol)."""

    on_audio_seconds: Callable[[float, str], None] = lambda s, protocol: None
    on_processing_seconds: Callable[[float, str], None] = lambda s, protocol: None
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


# ------------------------------------------------------------------------------------------------
# Device policy. The same rules as the collection's preflight (plugins/module_utils/ctranslate2.py and
# roles/whisper_api/vars/main.yml); tests/test_device.py checks that both agree on a table of cases.
# ------------------------------------------------------------------------------------------------
CT2_MIN_CC = (5, 3)
COMPUTE_TYPE_MIN_CC = {
    "float16": (5, 3),
    "int8": (6, 1),
    "int8_float16": (7, 0),
    "int8_float32": (6, 1),
    "bfloat16": (8, 0),
    "int8_bfloat16": (8, 0),
    "float32": (3, 5),
}
CPU_COMPUTE_TYPES = frozenset({"int8", "int8_float32", "float32", "int16"})
# GPU memory a model needs on CUDA, in MiB, by size: (name part, float16, int8); the first part found
# in the model's name wins. The whisper_api role's table (_whisper_api_model_memory), kept equal by a test.
MODEL_MEMORY_MIB = (
    ("turbo", 2600, 1700),
    ("distil-large", 2600, 1700),
    ("large", 4800, 3100),
    ("medium", 2800, 1800),
    ("small", 1300, 900),
    ("base", 800, 600),
    ("tiny", 700, 500),
)


def parse_cc(value: str) -> tuple[int, int]:
    major, _sep, minor = str(value).strip().partition(".")
    return int(major), int(minor or 0)


def model_need_mib(model: str) -> dict[str, int] | None:
    """{"float16": MiB, "int8": MiB} for a model id or directory, by its size name; None when unknown."""
    name = os.path.basename(model.rstrip("/")) if os.path.isdir(model) else model
    name = name.lower()
    for part, float16, int8 in MODEL_MEMORY_MIB:
        if part in name:
            return {"float16": float16, "int8": int8}
    return None


def cuda_compute_type(compute_capability: str, memory_mib: int | None,
                      need: dict[str, int] | None) -> tuple[str | None, str]:
    """The compute type to run on a card: float16, int8 on consumer Pascal (CC 6.1), then int8_float16 or
    int8 when float16 does not fit its memory. (None, reason) when the card cannot run the model."""
    cc = parse_cc(compute_capability)
    if cc < CT2_MIN_CC:
        return None, (f"the GPU has compute capability {compute_capability}; CTranslate2's CUDA build needs "
                      f">= {CT2_MIN_CC[0]}.{CT2_MIN_CC[1]}")
    preferred = "int8" if cc == (6, 1) else "float16"
    if memory_mib is None or need is None:
        return preferred, "card memory or model size unknown; assuming the model fits"
    want = need["int8"] if preferred == "int8" else need["float16"]
    if want <= memory_mib:
        return preferred, f"{preferred} needs ~{want} MiB of {memory_mib} MiB"
    if need["int8"] <= memory_mib:
        for candidate in ("int8_float16", "int8"):
            if cc >= COMPUTE_TYPE_MIN_CC[candidate]:
                return candidate, f"{preferred} does not fit ({want} > {memory_mib} MiB); {candidate} needs ~{need['int8']} MiB"
    return None, f"the model needs ~{need['int8']} MiB of GPU memory even quantized; the card has {memory_mib} MiB"


@dataclass(frozen=True)
class CudaProbe:
    """What the process found out about CUDA before loading the model."""

    devices: int = 0  # CUDA devices CTranslate2 sees (0 too when the driver or libcuda is missing)
    libraries: dict[str, str | None] = field(default_factory=dict)  # cuda_runtime.SONAMES -> path or None
    compute_capability: str | None = None  # from NVML; None: unknown
    memory_mib: int | None = None  # the card's memory from NVML; None: unknown
    model_need_mib: dict[str, int] | None = None  # {"float16": .., "int8": ..}; None: unknown
    cuda_compute_types: frozenset[str] | None = None  # CTranslate2's supported types (used when CC is unknown)
    cpu_compute_types: frozenset[str] | None = None
    error: str | None = None  # why counting CUDA devices failed
    gpu_name: str | None = None


@dataclass(frozen=True)
class DeviceDecision:
    wanted: str  # "cuda" or "cpu"
    attempts: tuple[tuple[str, str], ...]  # (device, compute_type) to try in order; empty: fail
    reason: str | None  # why CUDA is wanted but cannot run; None when nothing stands in its way

    @property
    def failed(self) -> bool:
        return not self.attempts


def wanted_device(settings: Settings, cuda_devices: int) -> str:
    """cuda for DEVICE=cuda, or DEVICE=auto when CTranslate2 sees a CUDA device at DEVICE_INDEX or
    REQUIRE_GPU is true; else cpu. DEVICE=cpu is always cpu."""
    if settings.device == "cpu":
        return "cpu"
    if settings.device == "cuda" or settings.require_gpu or cuda_devices > settings.device_index:
        return "cuda"
    return "cpu"


def _cuda_problem(settings: Settings, probe: CudaProbe) -> tuple[str | None, str | None]:
    """(compute type, None) when CUDA can run the model, else (None, why not)."""
    from . import cuda_runtime

    libcuda = "libcuda.so.1"
    if probe.libraries and not probe.libraries.get(libcuda):
        return None, f"{libcuda} not found: {cuda_runtime.PROVIDERS[libcuda]}"
    if probe.devices <= settings.device_index:
        why = f" ({probe.error})" if probe.error else ""
        return None, (f"CTranslate2 sees {probe.devices} CUDA device(s), so no device #{settings.device_index}{why}: "
                      "check the NVIDIA driver (nvidia-smi) and the /dev/nvidia* devices")
    missing = cuda_runtime.missing_reason(probe.libraries) if probe.libraries else None
    if missing:
        return None, missing
    cc = probe.compute_capability
    if settings.compute_type not in ("auto", "default"):
        ctype = settings.compute_type
        if cc is not None:
            if parse_cc(cc) < CT2_MIN_CC:
                return cuda_compute_type(cc, None, None)
            min_cc = COMPUTE_TYPE_MIN_CC.get(ctype)
            if min_cc and parse_cc(cc) < min_cc:
                return None, (f"WHISPER_API_COMPUTE_TYPE={ctype} needs compute capability >= {min_cc[0]}.{min_cc[1]}; "
                              f"the GPU has {cc}")
        need = probe.model_need_mib
        if need and probe.memory_mib is not None:
            want = need["int8"] if ctype.startswith("int8") else need["float16"]
            if want > probe.memory_mib:
                return None, f"{ctype} needs ~{want} MiB of GPU memory; the card has {probe.memory_mib} MiB"
        return ctype, None
    if cc is None:
        supported = probe.cuda_compute_types or frozenset()
        for ctype in ("float16", "int8_float16", "int8_float32"):
            if ctype in supported:
                return ctype, None
        return "float32", None
    ctype, why = cuda_compute_type(cc, probe.memory_mib, probe.model_need_mib)
    return (ctype, None) if ctype else (None, why)


def _why_not_cuda(settings: Settings, probe: CudaProbe) -> str | None:
    """Why WHISPER_API_DEVICE=auto settled on the CPU (None when the CPU was asked for)."""
    if settings.device == "cpu":
        return None
    why = (f"no CUDA device at WHISPER_API_DEVICE_INDEX={settings.device_index}: CTranslate2 sees "
           f"{probe.devices} CUDA device(s)" + (f" ({probe.error})" if probe.error else ""))
    if probe.libraries.get("libcuda.so.1") is None:
        why += "; libcuda.so.1 (the NVIDIA driver's) is not installed"
    return why + "; WHISPER_API_DEVICE=auto runs on the CPU"


def decide_device(settings: Settings, probe: CudaProbe) -> DeviceDecision:
    """The device policy as one pure function: the device wanted, the (device, compute type) attempts and,
    when CUDA is wanted but cannot run, why. Without REQUIRE_GPU the CPU follows as the fallback; with it
    a CUDA problem leaves no attempt (the service fails with the reason)."""
    if settings.compute_type == "auto":
        cpu_type = "int8"
    else:
        cpu_supported = probe.cpu_compute_types or CPU_COMPUTE_TYPES
        cpu_type = settings.compute_type if settings.compute_type in cpu_supported else "int8"
    cpu = ("cpu", cpu_type)
    if wanted_device(settings, probe.devices) == "cpu":
        return DeviceDecision("cpu", (cpu,), _why_not_cuda(settings, probe))
    ctype, why = _cuda_problem(settings, probe)
    if ctype is None:
        return DeviceDecision("cuda", () if settings.require_gpu else (cpu,), why)
    return DeviceDecision("cuda", (("cuda", ctype),) if settings.require_gpu else (("cuda", ctype), cpu), None)


def probe_cuda(settings: Settings, nvml: gpu.Nvml | None = None) -> CudaProbe:
    """Find out what the decision needs: CUDA devices, the runtime libraries (preloaded when CUDA is
    wanted, so CTranslate2 finds them by soname), and the card's compute capability and memory (NVML)."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbers the GPUs like NVML
    libraries = cuda_runtime.locate()
    devices, error = 0, None
    try:
        devices = ctranslate2.get_cuda_device_count()
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install must not stop a CPU service
        error = f"{type(exc).__name__}: {exc}"
    cc = memory = name = cuda_types = None
    if wanted_device(settings, devices) == "cuda":
        libraries = cuda_runtime.preload()
        if devices > settings.device_index:
            info = (nvml or gpu.Nvml()).info(settings.device_index)
            if info is not None:
                cc, memory, name = info.compute_capability, info.memory_mib, info.name
            try:
                cuda_types = frozenset(ctranslate2.get_supported_compute_types("cuda", settings.device_index))
            except Exception:  # noqa: BLE001 - unknown: the warm-up decides
                cuda_types = None
    try:
        cpu_types = frozenset(ctranslate2.get_supported_compute_types("cpu"))
    except Exception:  # noqa: BLE001
        cpu_types = None
    return CudaProbe(devices=devices, libraries=libraries, compute_capability=cc, memory_mib=memory,
                     model_need_mib=model_need_mib(settings.model), cuda_compute_types=cuda_types,
                     cpu_compute_types=cpu_types, error=error, gpu_name=name)


# Inference threads run this much nicer than the rest of the process: when every core decodes, the
# event loop (/health, refusals) still gets a core as soon as it wakes. Linux niceness is per thread
# and threads inherit it, so the loader thread sets it for itself and everything it starts: the
# workers and CTranslate2's own threads. Alone on its machine, inference loses nothing by it.
INFERENCE_NICE = 5


def _yield_cpu_to_http() -> None:
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + INFERENCE_NICE))
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids it: keep the priority
        log.debug("inference threads keep the process priority: %s", exc)


AUTO_CPU_WORKERS_MAX = 4  # replicas of the model in memory: enough to keep a CPU busy, few enough to fit


def worker_plan(settings: Settings, device: str) -> tuple[int, int]:
    """(workers, CTranslate2 threads per worker). WORKERS set: it, with CPU_THREADS per worker. WORKERS=0
    (auto): one worker on CUDA (the card batches); on the CPU one worker per thread of CPU_THREADS (else of
    the CPUs this process may use), at most AUTO_CPU_WORKERS_MAX, each with twice its share of the threads
    (at most all of them). Measured on a 2-core CPU (service/README.md, "Workers"): with 2 workers x 2
    threads two batches run at once (one batch leaves cores idle in its sequential steps) and a request
    alone has both CPUs; 2 workers x 1 thread were as fast together and 5-15% slower alone."""
    if settings.workers:
        return settings.workers, settings.cpu_threads
    if device == "cuda":
        return 1, settings.cpu_threads
    budget = settings.cpu_threads or len(os.sched_getaffinity(0))
    workers = max(1, min(AUTO_CPU_WORKERS_MAX, budget))
    return workers, max(1, min(budget, 2 * budget // workers))


class Engine:
    def __init__(self, settings: Settings, stats: EngineStats | None = None) -> None:
        self.settings = settings
        self.stats = stats or EngineStats()
        self.state = "loading"
        self.error: str | None = None
        self.device = "unknown"
        self.device_label = "unknown"
        self.compute_type = "unknown"
        self.gpu_available = False  # CTranslate2 sees a CUDA device at DEVICE_INDEX (usable or not)
        self.device_wanted = "cuda" if settings.device == "cuda" or settings.require_gpu else "cpu"
        self.device_reason: str | None = None  # why CUDA is not used (None: it is, or DEVICE=cpu)
        self.cuda_libraries: dict[str, str | None] = {}
        self.nvml = gpu.Nvml()
        self.load_seconds: float | None = None
        self.busy = 0
        self._busy_lock = threading.Lock()
        self.workers = settings.workers or 1  # resolved when the model loads (WORKERS=0: by device)
        self.cpu_threads = settings.cpu_threads
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=settings.queue_size + self.workers)
        self._threads: list[threading.Thread] = []
        self._model = None
        self._scheduler: Scheduler | None = None
        self._stopping = threading.Event()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        t = threading.Thread(target=self._load_then_serve, name="whisper-load", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.wake_all()
            self._scheduler.drain(Busy("the service is shutting down; retry on another instance"))
        for _worker in range(self.workers):
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
        if self._scheduler is not None:
            return self._scheduler.waiting
        return self._queue.qsize()

    @property
    def capacity(self) -> int:
        """Requests the engine holds at most: QUEUE_SIZE waiting, plus one running per worker, or with
        BATCHED one per window of a batch (BATCH_SIZE per worker)."""
        s = self.settings
        return s.queue_size + self.workers * (s.batch_size if s.batched else 1)

    def _load_then_serve(self) -> None:
        from faster_whisper import WhisperModel

        _yield_cpu_to_http()
        s = self.settings
        started = time.monotonic()
        try:
            probe = probe_cuda(s, self.nvml)
        except Exception as exc:  # noqa: BLE001 - never leave the service "loading": decide on what is known
            log.exception("probing CUDA failed")
            probe = CudaProbe(error=f"probing CUDA failed: {type(exc).__name__}: {exc}")
        self.cuda_libraries = probe.libraries
        self.gpu_available = probe.devices > s.device_index
        decision = decide_device(s, probe)
        self.device_wanted, self.device_reason = decision.wanted, decision.reason
        if decision.reason and not decision.failed and decision.wanted == "cuda":
            log.warning("CUDA is wanted but cannot run: %s; falling back to the CPU", decision.reason)
        elif decision.reason:
            log.info("CUDA is not used: %s", decision.reason)
        errors = []
        for device, compute_type in decision.attempts:
            workers, threads = worker_plan(s, device)
            try:
                model = WhisperModel(
                    s.model,
                    device=device,
                    device_index=s.device_index,
                    compute_type=compute_type,
                    cpu_threads=threads,
                    num_workers=workers,
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
                if device == "cuda":
                    self.device_reason = f"loading the model on CUDA ({compute_type}) failed: {type(exc).__name__}: {exc}"
                continue
            self._model = model
            self.workers, self.cpu_threads = workers, threads
            self._queue.maxsize = s.queue_size + workers
            if s.batched:
                self._scheduler = Scheduler(
                    model, batch_size=s.batch_size, batch_wait_s=s.batch_wait_ms / 1000, beam_size=s.beam_size,
                    vad=s.vad_filter, pack=s.pack_short, max_duration_s=s.max_duration_s,
                    max_processing_s=s.max_processing_s)
            self.device = device
            self.compute_type = compute_type
            if device == "cuda":
                name = probe.gpu_name or _gpu_name(s.device_index)
                self.device_label = f"cuda ({name})" if name else f"cuda:{s.device_index}"
            else:
                self.device_label = "cpu"
            break
        if self._model is None and s.require_gpu and self.device_reason:
            self.error = f"WHISPER_API_REQUIRE_GPU=true but CUDA cannot be used: {self.device_reason}"
            self.state = "failed"
            log.error("%s", self.error)
            return
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
        log.info("model %s ready on %s (%s) in %.1f s; %d worker(s) x %s CTranslate2 thread(s)", s.model,
                 self.device_label, self.compute_type, self.load_seconds, self.workers, self.cpu_threads or "default")
        for i in range(1, self.workers):
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
    def refusal(self) -> ApiError | None:
        """The error ``submit`` would raise now (loading, failed, every worker busy and the queue full),
        or None: the HTTP layer asks before it reads a request's body."""
        if self.state == "loading":
            return Busy("the model is still loading; retry in a few seconds", headers={"Retry-After": "5"})
        if self.state != "ready":
            return ApiError(f"the model is not available: {self.error}", status=503, type="server_error",
                            code="model_unavailable")
        # The engine holds `workers` running slots (BATCH_SIZE each when batched) on top of QUEUE_SIZE waiting ones.
        held = self._scheduler.requests if self._scheduler is not None else self._queue.qsize() + self.busy
        if held >= self.capacity:
            return Busy(
                f"all {self.workers} worker(s) are busy and {self.settings.queue_size} request(s) wait "
                "(WHISPER_API_QUEUE_SIZE); retry later",
                headers={"Retry-After": str(self._retry_after())},
            )
        return None

    def gpu_sample(self, index: int) -> gpu.GpuSample | None:
        """NVML's reading of the GPU at ``index`` (None without NVML): /metrics' GPU gauges."""
        return self.nvml.sample(index)

    def submit(self, job: Job) -> concurrent.futures.Future:
        refusal = self.refusal()
        if refusal is not None:
            raise refusal
        job.future.add_done_callback(lambda future: self._done(future, job.protocol))
        if self._scheduler is not None:
            self._scheduler.add(job, DecodeOptions(task=job.task, language=job.language, prompt=job.prompt or None,
                                                   temperatures=self._temperatures(job),
                                                   word_timestamps=job.word_timestamps))
            return job.future
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy("the request queue is full; retry later",
                       headers={"Retry-After": str(self._retry_after())}) from None
        return job.future

    def _retry_after(self) -> int:
        return max(1, min(60, (self.queue_depth + 1) * 5 // max(1, self.workers)))

    def _temperatures(self, job: Job) -> tuple[float, ...]:
        if job.temperature == 0.0 and self.settings.temperature_fallback:
            return _FALLBACK_TEMPERATURES
        return (job.temperature,)

    def _done(self, future: concurrent.futures.Future, protocol: str) -> None:
        """A finished request's audio and processing seconds, by protocol (not for a failed or cancelled one)."""
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        self.stats.on_audio_seconds(result.duration, protocol)
        self.stats.on_processing_seconds(result.processing_time, protocol)

    @property
    def languages(self) -> list[str]:
        """The languages the served model transcribes: English alone for an English-only model (loaded,
        or before loading: a model id ending in .en), else every language whisper knows."""
        from .formats import LANGUAGE_NAMES

        if self._model is not None:
            multilingual = self._model.model.is_multilingual
        else:
            multilingual = not self.settings.model_id.lower().rstrip("/").endswith(".en")
        return list(LANGUAGE_NAMES) if multilingual else ["en"]

    # work --------------------------------------------------------------------------------------
    def _worker(self) -> None:
        if self._scheduler is not None:
            self._batch_worker(self._scheduler)
            return
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

    def _batch_worker(self, scheduler: Scheduler) -> None:
        while True:
            batch = scheduler.next_batch(self._stopping)
            if batch is None:
                return
            with self._busy_lock:
                self.busy += 1
            try:
                scheduler.run(batch)
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
        temperatures = self._temperatures(job)
        temperature = temperatures if len(temperatures) > 1 else temperatures[0]
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
        segments_iter, info = self._model.transcribe(decoded.samples, **kwargs)
        limit = job.max_processing_s or s.max_processing_s
        deadline = started + limit
        segments: list[Segment] = []
        for i, seg in enumerate(segments_iter):
            if time.monotonic() > deadline:
                raise TimeLimit(
                    f"transcription exceeded the processing time limit of {limit:g} s "
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
                f"transcription exceeded the processing time limit of {limit:g} s "
                "(WHISPER_API_MAX_PROCESSING_S); send shorter audio or raise the limit"
            )
        elapsed = time.monotonic() - started
        return Transcription(task=job.task, language=info.language, duration=decoded.duration,
                             segments=segments, processing_time=elapsed)
