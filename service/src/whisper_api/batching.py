# SPDX-License-Identifier: GPL-3.0-or-later
"""Cross-request batching: every waiting request is cut into windows (30 s, or speech regions when VAD
is on), and each worker takes up to BATCH_SIZE windows from all of them at once, round-robin by
request, runs the encoder and the decoder on the batch, and hands each window's segments back to its
request, in order. Short windows with the same decoding options may share one 30 s window (PACK_SHORT):
the encoder costs the same for 5 s of speech as for 30 s, so packing is where short requests win on a CPU.

Only faster-whisper's and CTranslate2's own pieces decode: ``FeatureExtractor``, ``WhisperModel.encode``,
``model.generate``, ``detect_language``, the ``Tokenizer``, ``_split_segments_by_timestamps``,
``add_word_timestamps`` (alignment) and Silero VAD (``get_speech_timestamps``: where speech begins and
ends). What is ours: the scheduling; windows cut in the quietest 200 ms of their last 10 s (a pause, not
a word), silences inside kept; per-slot options and the temperature fallback done per window of a batch
(faster-whisper's rules, ``generate_with_fallback``); the rest of a window the model ended early decoded
again (what the sequential decode's seek does); packing, and the split of a packed window's segments
back to its requests by their timestamps."""

from __future__ import annotations

import collections
import concurrent.futures
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ctranslate2
import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as FwSegment
from faster_whisper.transcribe import WhisperModel
from faster_whisper.transcribe import Word as FwWord
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens
from faster_whisper.vad import VadOptions, get_speech_timestamps

from . import audio
from .errors import ApiError, TimeLimit
from .result import Segment, Transcription, Word

log = logging.getLogger("whisper_api.batching")

WINDOW_S = 30.0  # Whisper's window: the encoder always sees 30 s
PACK_GAP_S = 1.0  # silence between two requests' audio in a packed window
PACK_MAX_S = 15.0  # only windows this short are packed (a longer one fills half a window alone)
STRADDLE_S = 0.2  # a segment that reaches this far into a second piece of a packed window straddles it
COVER_S = 1.5  # a piece's segments must begin and end this close to its speech's (VAD cut it to speech)
# faster-whisper's defaults (WhisperModel.transcribe): the fallback thresholds and the silence rule.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
BEST_OF = 5
# Word timestamps: faster-whisper's own punctuation defaults (read from its signature, not copied).
_TRANSCRIBE_DEFAULTS = inspect.signature(WhisperModel.transcribe).parameters
PREPEND_PUNCTUATIONS = _TRANSCRIBE_DEFAULTS["prepend_punctuations"].default
APPEND_PUNCTUATIONS = _TRANSCRIBE_DEFAULTS["append_punctuations"].default


@dataclass(frozen=True)
class DecodeOptions:
    """What a request decides about its own decoding; windows pack together only when these are equal."""

    task: str
    language: str | None
    prompt: str | None
    temperatures: tuple[float, ...]
    word_timestamps: bool


@dataclass(eq=False)
class Window:
    request: Request
    samples: np.ndarray
    offset: float  # where it starts in the request's audio (s)
    duration: float
    packable: bool = True
    packed_again: bool = False  # a piece of a packed window that did not split cleanly gets one more packing


@dataclass(eq=False)
class Request:
    job: object  # engine.Job
    options: DecodeOptions
    started: float
    deadline: float
    limit: float
    duration: float = 0.0
    language: str | None = None
    windows: list[Window] = field(default_factory=list)
    todo: collections.deque = field(default_factory=collections.deque)  # windows not yet in a batch
    results: dict[int, list[FwSegment]] = field(default_factory=dict)  # by id() of the window
    emitted: int = 0  # windows whose segments went out
    in_flight: int = 0  # windows in a running batch
    segments: list[Segment] = field(default_factory=list)
    done: bool = False

    @property
    def future(self) -> concurrent.futures.Future:
        return self.job.future


@dataclass(eq=False)
class Slot:
    """One row of a batch: one window, or several short ones packed with silence between them."""

    options: DecodeOptions
    pieces: list[tuple[Window, float]] = field(default_factory=list)  # (window, its start in the slot)
    duration: float = 0.0

    def fits(self, window: Window) -> bool:
        return self.duration + PACK_GAP_S + window.duration <= WINDOW_S

    def add(self, window: Window) -> None:
        start = self.duration + PACK_GAP_S if self.pieces else 0.0
        self.pieces.append((window, start))
        self.duration = start + window.duration

    def samples(self) -> np.ndarray:
        parts = []
        gap = np.zeros(int(PACK_GAP_S * audio.SAMPLE_RATE), dtype=np.float32)
        for i, (window, _start) in enumerate(self.pieces):
            if i:
                parts.append(gap)
            parts.append(window.samples)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


def windows_at_silences(samples: np.ndarray, start: int, end: int, longest: int,
                        search: int = 10 * audio.SAMPLE_RATE, frame: int = audio.SAMPLE_RATE // 5) -> list[tuple[int, int]]:
    """Windows (start, end sample) of at most ``longest`` samples covering samples[start:end], each cut in
    the quietest ``frame`` (200 ms, by RMS) of its last ``search`` samples (10 s): a cut falls in a pause,
    not in a word, and the model hears the audio as it was, pauses included."""
    hop = frame // 10
    windows = []
    while end - start > longest:
        lo, hi = start + longest - search, start + longest - frame
        energy = np.array([float(np.mean(samples[i:i + frame] ** 2)) for i in range(lo, hi + 1, hop)])
        cut = lo + int(np.argmin(energy)) * hop + frame // 2
        windows.append((start, cut))
        start = cut
    if end > start:
        windows.append((start, end))
    return windows


def _take(storage: ctranslate2.StorageView, indices: list[int], size: int) -> ctranslate2.StorageView:
    """Rows ``indices`` of a batch's encoder output (the whole output when all rows are wanted)."""
    if indices == list(range(size)):
        return storage
    on_cpu = storage if storage.device == "cpu" else storage.to_device(ctranslate2.Device.cpu)
    rows = np.asarray(on_cpu)[indices]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(rows))


def split_packed(segments: list[dict], pieces: list[tuple[float, float]]) -> list[list[dict] | None]:
    """Give each segment of a packed window (times in the window) to the piece it lies in, by overlap
    (a segment in a gap goes to the nearest piece). Per piece its segments, or None for a piece that must
    be decoded again: every piece a segment reaches more than STRADDLE_S into when it reaches into more
    than one (whose words those are is unknown), and a piece whose segments do not cover its speech from
    within COVER_S of its start to within COVER_S of its end (the model dropped words, e.g. it ended the
    window early). The other pieces keep their segments: one bad piece does not cost the whole window."""
    out: list[list[dict]] = [[] for _piece in pieces]
    bad: set[int] = set()
    for seg in segments:
        overlaps = [max(0.0, min(seg["end"], end) - max(seg["start"], start)) for start, end in pieces]
        straddled = [i for i, overlap in enumerate(overlaps) if overlap > STRADDLE_S]
        if len(straddled) > 1:
            bad.update(straddled)
            continue
        best = max(range(len(pieces)), key=lambda i: overlaps[i])
        if overlaps[best] <= 0:
            middle = (seg["start"] + seg["end"]) / 2
            best = min(range(len(pieces)), key=lambda i: min(abs(middle - pieces[i][0]), abs(middle - pieces[i][1])))
        out[best].append(seg)
    if len(pieces) > 1:
        for i, ((start, end), segs) in enumerate(zip(pieces, out)):
            if not segs or min(s["start"] for s in segs) > start + COVER_S or max(s["end"] for s in segs) < end - COVER_S:
                bad.add(i)
    return [None if i in bad else segs for i, segs in enumerate(out)]


class Scheduler:
    """The windows of every request in the engine, and what a worker does with a batch of them."""

    def __init__(self, model, *, batch_size: int, batch_wait_s: float, beam_size: int, vad: bool,
                 pack: bool, max_duration_s: float, max_processing_s: float,
                 on_done: Callable[[float, float], None] = lambda duration, elapsed: None) -> None:
        self.model = model  # faster_whisper.WhisperModel
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.beam_size = beam_size
        self.vad = vad
        self.pack = pack
        self.max_duration_s = max_duration_s
        self.max_processing_s = max_processing_s
        self.on_done = on_done
        self._cond = threading.Condition()
        self._incoming: collections.deque = collections.deque()  # jobs not yet decoded
        self._active: collections.deque[Request] = collections.deque()
        self._preparing = 0
        self.running_batches = 0
        self._idle_workers = 0  # workers in next_batch: the ones a batch may be shared with
        # Counters: windows cut from requests, batches, their rows (slots), windows decoded in them, packed
        # windows decoded again piece by piece, windows whose rest was decoded again (ended early).
        self.stats = dict.fromkeys(("windows_cut", "batches", "slots", "windows", "redone", "continued"), 0)
        self._suppress = get_suppressed_tokens(self._tokenizer("transcribe", "en"), [-1])
        self.fps = model.frames_per_second
        if vad:
            get_speech_timestamps(np.zeros(audio.SAMPLE_RATE, dtype=np.float32), VadOptions())  # load Silero

    # bookkeeping ----------------------------------------------------------------------------------
    def add(self, job, options: DecodeOptions) -> None:
        with self._cond:
            self._incoming.append((job, options))
            self._cond.notify()

    @property
    def requests(self) -> int:
        """Requests in the engine: not yet decoded, or with windows still to do."""
        with self._cond:
            return len(self._incoming) + self._preparing + len(self._active)

    @property
    def waiting(self) -> int:
        """Requests none of whose windows is done or in a batch yet."""
        with self._cond:
            return len(self._incoming) + self._preparing + sum(
                1 for r in self._active if not r.results and not r.in_flight)

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def drain(self, exc: Exception) -> None:
        """Fail every request still in the engine (shutting down)."""
        with self._cond:
            jobs = [job for job, _options in self._incoming] + [r.job for r in self._active]
            self._incoming.clear()
            self._active.clear()
        for job in jobs:
            _fail(job.future, exc)

    def _tokenizer(self, task: str, language: str | None) -> Tokenizer:
        return Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task=task, language=language)

    # preparing a request ----------------------------------------------------------------------------
    def _prepare(self, job, options: DecodeOptions) -> Request | None:
        """Decode the audio and cut it into windows; a bad file fails its own request only."""
        started = time.monotonic()
        if job.future.cancelled():
            return None
        try:
            decoded = audio.decode(job.data, max_duration_s=self.max_duration_s, name=job.name)
        except Exception as exc:  # noqa: BLE001 - ApiError for bad audio; anything else is this request's 500
            if not isinstance(exc, ApiError):
                log.exception("decoding %s failed", job.name)
            _fail(job.future, exc)
            return None
        job.data = b""  # free the upload early
        if job.on_decoded:
            job.on_decoded(decoded.duration)
        language = options.language
        if language is None and not self.model.model.is_multilingual:
            language = "en"
        elif language is not None and not self.model.model.is_multilingual:
            language = "en"
        limit = job.max_processing_s or self.max_processing_s
        req = Request(job=job, options=options, started=started, deadline=started + limit, limit=limit,
                      duration=decoded.duration, language=language)
        samples = decoded.samples
        if self.vad:
            # VAD finds where speech begins and ends; the windows between are cut in pauses.
            speech = get_speech_timestamps(samples, VadOptions())
            cuts = windows_at_silences(samples, speech[0]["start"], speech[-1]["end"],
                                       int(WINDOW_S * audio.SAMPLE_RATE)) if speech else []
            spans = [(samples[a:b], a / audio.SAMPLE_RATE, (b - a) / audio.SAMPLE_RATE) for a, b in cuts]
        else:
            cuts = windows_at_silences(samples, 0, len(samples), int(WINDOW_S * audio.SAMPLE_RATE))
            spans = [(samples[a:b], a / audio.SAMPLE_RATE, (b - a) / audio.SAMPLE_RATE) for a, b in cuts]
        for chunk, offset, duration in spans:
            if duration > 0:
                window = Window(req, chunk, offset, duration,
                                packable=self.pack and self.vad and duration <= PACK_MAX_S and language is not None)
                req.windows.append(window)
        req.todo.extend(req.windows)
        self.stats["windows_cut"] += len(req.windows)
        return req

    # forming a batch --------------------------------------------------------------------------------
    def next_batch(self, stopping: threading.Event) -> list[Slot] | None:
        """Block until there is work, then return up to BATCH_SIZE slots; None when stopping. Waiting
        requests are decoded first; a batch that is not full waits up to BATCH_WAIT_MS for more. When
        other workers wait too, the work ready now is shared out: this worker takes its part only."""
        with self._cond:
            self._idle_workers += 1
        try:
            return self._next_batch(stopping)
        finally:
            with self._cond:
                self._idle_workers -= 1

    def _next_batch(self, stopping: threading.Event) -> list[Slot] | None:
        wait_until = None
        while True:
            job = None
            with self._cond:
                if stopping.is_set():
                    return None
                if self._incoming:
                    job, options = self._incoming.popleft()
                    self._preparing += 1
                else:
                    self._reap()
                    ready = sum(len(r.todo) for r in self._active if self._schedulable(r))
                    now = time.monotonic()
                    if ready:
                        if wait_until is None:
                            wait_until = now + self.batch_wait_s
                        if ready >= self.batch_size or now >= wait_until:
                            batch = self._form_batch()
                            if batch:
                                self.running_batches += 1
                                self.stats["batches"] += 1
                                self.stats["slots"] += len(batch)
                                self.stats["windows"] += sum(len(slot.pieces) for slot in batch)
                                return batch
                        self._cond.wait(max(0.0, wait_until - now) or 0.001)
                    else:
                        self._cond.wait(0.25)  # also wakes to notice cancelled or overdue requests
                    continue
            req = None
            try:
                req = self._prepare(job, options)
            finally:
                with self._cond:
                    self._preparing -= 1
                    if req is not None:
                        if req.windows:
                            self._active.append(req)
                        else:
                            self._finish(req)
                    self._cond.notify_all()

    @staticmethod
    def _schedulable(req: Request) -> bool:
        # A request whose language is still to be detected sends its first window alone.
        return bool(req.todo) and (req.language is not None or not req.in_flight and not req.results)

    def _reap(self) -> None:
        """Drop cancelled requests and fail overdue ones (their windows leave the pool)."""
        now = time.monotonic()
        for req in list(self._active):
            if req.future.cancelled():
                req.done = True
            elif now > req.deadline:
                req.done = True
                _fail(req.future, self._time_limit(req))
            if req.done:
                self._active.remove(req)

    def _time_limit(self, req: Request) -> TimeLimit:
        done_s = sum(w.duration for w in req.windows[:req.emitted])
        return TimeLimit(
            f"transcription exceeded the processing time limit of {req.limit:g} s "
            f"(WHISPER_API_MAX_PROCESSING_S) after {done_s:.1f} s of {req.duration:.1f} s of audio; "
            "send shorter audio or raise the limit"
        )

    def _form_batch(self) -> list[Slot]:
        """One window per request per pass, round-robin, so a long request never holds back a short one;
        the next batch starts with the request after the first one served here."""
        slots: list[Slot] = []
        open_slots: dict[DecodeOptions, list[Slot]] = {}
        progressed = True
        while progressed:
            progressed = False
            for req in self._active:
                if not self._schedulable(req):
                    continue
                window = req.todo[0]
                slot = None
                if window.packable:
                    slot = next((s for s in open_slots.get(req.options, []) if s.fits(window)), None)
                if slot is None:
                    if len(slots) >= self.batch_size:
                        continue
                    slot = Slot(req.options)
                    slots.append(slot)
                    if window.packable:
                        open_slots.setdefault(req.options, []).append(slot)
                slot.add(req.todo.popleft())
                req.in_flight += 1
                progressed = True
        if self._active:
            self._active.rotate(-1)
        share = -(-len(slots) // max(1, self._idle_workers))
        for slot in reversed(slots[share:]):  # the other waiting workers' part goes back, in order
            for window, _start in reversed(slot.pieces):
                window.request.todo.appendleft(window)
                window.request.in_flight -= 1
        return slots[:share]

    # running a batch --------------------------------------------------------------------------------
    def run(self, slots: list[Slot]) -> None:
        """Decode one batch and deliver its segments; any failure fails the batch's requests only."""
        try:
            outputs = self._decode(slots)
        except Exception as exc:  # noqa: BLE001 - surfaced to the batch's callers as a 500
            log.exception("decoding a batch of %d window(s) failed", len(slots))
            with self._cond:
                self.running_batches -= 1
                for req in {w.request for slot in slots for w, _s in slot.pieces}:
                    req.in_flight = 0
                    if not req.done:
                        req.done = True
                        if req in self._active:
                            self._active.remove(req)
                        _fail(req.future, exc)
                self._cond.notify_all()
            return
        with self._cond:
            self.running_batches -= 1
            touched = []
            for slot, per_piece in zip(slots, outputs):
                for (window, _start), piece in zip(slot.pieces, per_piece):
                    req = window.request
                    req.in_flight -= 1
                    if req.done:
                        continue
                    if piece is None:  # a piece of a packed window that did not split cleanly: again,
                        self.stats["redone"] += 1  # packed once more with other such pieces, then alone
                        window.packable = window.packable and not window.packed_again
                        window.packed_again = True
                        req.todo.appendleft(window)
                        continue
                    segs, covered = piece
                    req.results[id(window)] = segs
                    if segs and len(slot.pieces) == 1 and window.duration - covered > COVER_S:
                        # The model ended the window before its audio's end: decode the rest, as
                        # faster-whisper's sequential decode seeks to the last timestamp.
                        cut = int(covered * audio.SAMPLE_RATE)
                        rest = Window(req, window.samples[cut:], window.offset + covered, window.duration - covered,
                                      packable=False)
                        req.windows.insert(req.windows.index(window) + 1, rest)
                        req.todo.appendleft(rest)
                        self.stats["continued"] += 1
                    if req not in touched:
                        touched.append(req)
            for req in touched:
                self._deliver(req)
            self._cond.notify_all()

    def _deliver(self, req: Request) -> None:
        """Hand the request its windows' segments in order; finish it after the last (lock held)."""
        if req.future.cancelled():
            req.done = True
        elif time.monotonic() > req.deadline:
            req.done = True
            _fail(req.future, self._time_limit(req))
        if req.done:
            if req in self._active:
                self._active.remove(req)
            return
        while req.emitted < len(req.windows) and id(req.windows[req.emitted]) in req.results:
            segs = req.results.pop(id(req.windows[req.emitted]))
            for seg in segs:
                out = Segment(
                    id=len(req.segments), seek=int(seg.seek), start=float(seg.start), end=float(seg.end),
                    text=seg.text, tokens=list(seg.tokens), temperature=float(seg.temperature or 0.0),
                    avg_logprob=float(seg.avg_logprob), compression_ratio=float(seg.compression_ratio),
                    no_speech_prob=float(seg.no_speech_prob),
                    words=[Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in seg.words]
                    if seg.words is not None else None,
                )
                req.segments.append(out)
                if req.job.on_segment:
                    req.job.on_segment(out)
            req.emitted += 1
        if req.emitted == len(req.windows):
            if req in self._active:
                self._active.remove(req)
            self._finish(req)

    def _finish(self, req: Request) -> None:
        req.done = True
        elapsed = time.monotonic() - req.started
        result = Transcription(task=req.options.task, language=req.language or "en", duration=req.duration,
                               segments=req.segments, processing_time=elapsed)
        if not req.future.done():
            try:
                req.future.set_result(result)
            except concurrent.futures.InvalidStateError:  # cancelled meanwhile
                return
            self.on_done(req.duration, elapsed)

    # the model ----------------------------------------------------------------------------------------
    def _decode(self, slots: list[Slot]) -> list[list[tuple[list[FwSegment], float] | None]]:
        """Per slot: for each piece its segments (on the request's timeline) and how far into the piece they
        reach (s); None for a piece of a packed slot to decode again."""
        m = self.model
        features = np.stack([pad_or_trim(m.feature_extractor(slot.samples())[..., :-1]) for slot in slots])
        encoder_output = m.encode(features)
        n = len(slots)
        tokenizers: list[Tokenizer] = []
        for i, slot in enumerate(slots):
            req = slot.pieces[0][0].request
            if req.language is None:  # multilingual model, no language asked: detect it on this window
                detected = m.model.detect_language(_take(encoder_output, [i], n))[0]
                req.language = detected[0][0][2:-2]
            tokenizers.append(self._tokenizer(slot.options.task, req.language))
        prompts = [
            m.get_prompt(tok, previous_tokens=tok.encode(" " + slot.options.prompt.strip()) if slot.options.prompt else [],
                         without_timestamps=False)
            for slot, tok in zip(slots, tokenizers)
        ]
        chosen = self._generate_with_fallback(slots, tokenizers, prompts, encoder_output)
        outputs: list[list[list[FwSegment]] | None] = []
        for i, (slot, tok) in enumerate(zip(slots, tokenizers)):
            result, avg_logprob, temperature, compression_ratio = chosen[i]
            tokens = result.sequences_ids[0]
            if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
                tokens = []  # silence (faster-whisper's rule)
            size = int(math.ceil(slot.duration) * self.fps)
            subsegments = []
            if tokens:
                subsegments, _seek, _single = m._split_segments_by_timestamps(  # noqa: SLF001 - its own splitter
                    tokenizer=tok, tokens=tokens, time_offset=0.0, segment_size=size,
                    segment_duration=slot.duration, seek=0)
                subsegments += _unclosed_tail(tok, tokens, subsegments, slot.duration, m.time_precision)
            subsegments = [s for s in subsegments if s["start"] != s["end"] and tok.decode(s["tokens"]).strip()]
            if subsegments and slot.options.word_timestamps:
                m.add_word_timestamps([subsegments], tok, _take(encoder_output, [i], n), [size],
                                      PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0)
            spans = [(start, start + window.duration) for window, start in slot.pieces]
            per_piece = split_packed(subsegments, spans) if len(spans) > 1 else [subsegments]
            outputs.append([
                None if segs is None else
                ([self._segment(s, tok, window, start, avg_logprob, temperature, result.no_speech_prob,
                                slot.options.word_timestamps) for s in segs],
                 max((s["end"] - start for s in segs), default=0.0))
                for (window, start), segs in zip(slot.pieces, per_piece)
            ])
        return outputs

    def _segment(self, s: dict, tok: Tokenizer, window: Window, start: float, avg_logprob: float,
                 temperature: float, no_speech_prob: float, word_timestamps: bool) -> FwSegment:
        """A subsegment of a slot as a segment of its window's request (its timeline, before VAD's restore)."""
        def place(t: float) -> float:
            return round(window.offset + min(window.duration, max(0.0, t - start)), 3)

        text = tok.decode(s["tokens"])
        words = None
        if word_timestamps:
            words = [FwWord(start=place(w["start"]), end=place(w["end"]), word=w["word"], probability=w["probability"])
                     for w in s.get("words", [])]
        return FwSegment(id=0, seek=int(window.offset * self.fps), start=place(s["start"]), end=place(s["end"]),
                         text=text, tokens=s["tokens"], avg_logprob=avg_logprob,
                         compression_ratio=get_compression_ratio(text), no_speech_prob=no_speech_prob,
                         words=words, temperature=temperature)

    def _generate_with_fallback(self, slots, tokenizers, prompts, encoder_output) -> list[tuple]:
        """faster-whisper's ``generate_with_fallback`` over a batch: the slots at their first temperature in
        one ``generate`` (one per temperature and prompt length: CTranslate2 wants the start-of-transcript
        token at the same position in every row); the slots that fail the thresholds go on, together, at
        their next temperature."""
        m = self.model
        n = len(slots)
        chosen: dict[int, tuple] = {}
        attempts: dict[int, list[tuple]] = {i: [] for i in range(n)}
        below_cr: dict[int, list[tuple]] = {i: [] for i in range(n)}
        step = 0
        pending = list(range(n))
        while pending:
            groups: dict[tuple[float, int], list[int]] = {}
            for i in pending:
                temps = slots[i].options.temperatures
                key = (temps[min(step, len(temps) - 1)], prompts[i].index(tokenizers[i].sot))
                groups.setdefault(key, []).append(i)
            still = []
            for (temperature, _sot), members in groups.items():
                if temperature > 0:
                    kwargs = {"beam_size": 1, "num_hypotheses": BEST_OF, "sampling_topk": 0,
                              "sampling_temperature": temperature}
                else:
                    kwargs = {"beam_size": self.beam_size, "patience": 1}
                results = m.model.generate(
                    _take(encoder_output, members, n), [prompts[i] for i in members],
                    length_penalty=1, repetition_penalty=1, no_repeat_ngram_size=0, max_length=m.max_length,
                    return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                    suppress_tokens=self._suppress, max_initial_timestamp_index=int(round(1.0 / m.time_precision)),
                    **kwargs,
                )
                for i, result in zip(members, results):
                    tokens = result.sequences_ids[0]
                    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
                    ratio = get_compression_ratio(tokenizers[i].decode(tokens).strip())
                    attempt = (result, avg_logprob, temperature, ratio)
                    attempts[i].append(attempt)
                    needs_fallback = False
                    if ratio > COMPRESSION_RATIO_THRESHOLD:
                        needs_fallback = True
                    else:
                        below_cr[i].append(attempt)
                    if avg_logprob < LOG_PROB_THRESHOLD:
                        needs_fallback = True
                    if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
                        needs_fallback = False
                    last = step >= len(slots[i].options.temperatures) - 1
                    if not needs_fallback:
                        chosen[i] = attempt
                    elif last:
                        best = max(below_cr[i] or attempts[i], key=lambda a: a[1])
                        chosen[i] = (best[0], best[1], temperature, best[3])
                    else:
                        still.append(i)
            pending = sorted(still)
            step += 1
        return [chosen[i] for i in range(n)]


def _unclosed_tail(tok: Tokenizer, tokens: list[int], subsegments: list[dict], duration: float,
                   precision: float) -> list[dict]:
    """The text after the last closed segment, which ``_split_segments_by_timestamps`` leaves for the next
    window of a sequential decode (it seeks there). A window here holds all of its audio, so there is no
    next window: the text is a last segment that ends with the window."""
    used = sum(len(s["tokens"]) for s in subsegments)
    tail = tokens[used:]
    if not any(t < tok.eot for t in tail):
        return []
    start = subsegments[-1]["end"] if subsegments else 0.0
    if tail[0] >= tok.timestamp_begin:
        start = (tail[0] - tok.timestamp_begin) * precision
    return [{"seek": 0, "start": start, "end": max(start, duration), "tokens": tail}]


def _fail(future: concurrent.futures.Future, exc: BaseException) -> None:
    if not future.done():
        try:
            future.set_exception(exc)
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile
            pass
