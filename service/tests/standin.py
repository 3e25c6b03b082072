# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in engine, for the HTTP-layer tests ONLY (test_http.py, test_openapi.py).

It answers every job with a fixed transcript and lets a test set the engine's state, its refusal and a
job's failure, so routes, auth, limits, error shapes, formats and SSE framing can be tested in-process in
milliseconds. It knows nothing of audio: every behaviour that involves the model (decoding, bad audio,
languages, time limits, the queue's own refusals, /health during inference) stays tested with the real
tiny.en model in the slow tier (test_api.py, test_bad_input.py, test_ops.py, ...)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

from whisper_api.engine import EngineStats, Job
from whisper_api.errors import ApiError
from whisper_api.result import Segment, Transcription, Word

SEGMENTS = [
    Segment(id=0, seek=0, start=0.0, end=1.5, text=" Hello there.", tokens=[1, 2], temperature=0.0,
            avg_logprob=-0.2, compression_ratio=1.1, no_speech_prob=0.01,
            words=[Word(0.0, 0.7, " Hello", 0.9), Word(0.7, 1.5, " there.", 0.8)]),
    Segment(id=1, seek=0, start=1.5, end=3.0, text=" General Kenobi.", tokens=[3, 4], temperature=0.0,
            avg_logprob=-0.3, compression_ratio=1.2, no_speech_prob=0.02,
            words=[Word(1.5, 2.2, " General", 0.9), Word(2.2, 3.0, " Kenobi.", 0.7)]),
]
TEXT = "Hello there. General Kenobi."


class StandInEngine:
    """The attributes and methods of ``whisper_api.web.common.EngineLike``."""

    def __init__(self, state: str = "ready") -> None:
        self.state = state
        self.error: str | None = None
        self.device = self.device_label = "cpu"
        self.compute_type = "int8"
        self.gpu_available = False
        self.device_wanted = "cpu"
        self.device_reason: str | None = None
        self.cuda_libraries: dict[str, str | None] = {}
        self.busy = 0
        self.languages = ["en"]
        self.workers = 1
        self.stats = EngineStats()
        self.refuse: ApiError | None = None  # what refusal() and submit() answer, when set
        self.fail_before: ApiError | None = None  # a job's failure before its audio is decoded (bad audio)
        self.fail_after: ApiError | None = None  # a job's failure after its segments (e.g. the time limit)
        self.hold = False  # when set, jobs never finish: only their caller's cancel() ends them
        self.jobs: list[Job] = []
        self.started = self.stopped = False

    @property
    def queue_depth(self) -> int:
        return 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def gpu_sample(self, index: int) -> None:
        return None

    def refusal(self) -> ApiError | None:
        return self.refuse

    def submit(self, job: Job) -> concurrent.futures.Future:
        if self.refuse is not None:
            raise self.refuse
        self.jobs.append(job)
        if not self.hold:
            threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job.future

    def _run(self, job: Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        if self.fail_before is not None:
            job.future.set_exception(self.fail_before)
            return
        if job.on_decoded:
            job.on_decoded(3.0)
        time.sleep(0.05)  # a real engine decodes for a while after the audio is known to be valid
        segments = [s if job.word_timestamps else Segment(**{**s.__dict__, "words": None}) for s in SEGMENTS]
        for seg in segments:
            if job.on_segment:
                job.on_segment(seg)
        if self.fail_after is not None:
            job.future.set_exception(self.fail_after)
            return
        self.stats.on_audio_seconds(3.0, job.protocol)
        job.future.set_result(Transcription(task=job.task, language=job.language or "en", duration=3.0,
                                            segments=segments, processing_time=0.01))
