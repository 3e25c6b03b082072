# SPDX-License-Identifier: GPL-3.0-or-later
"""The Wyoming protocol (Home Assistant's speech-to-text), a thin adapter over the engine the HTTP layer
uses: same model, queue, workers and batching, same limits (WHISPER_API_MAX_DURATION_S while the audio
streams in, WHISPER_API_MAX_PROCESSING_S in the engine), same metrics with ``protocol="wyoming"``.

It runs in the HTTP server's event loop (the app's lifespan starts and stops it). One connection:
``describe`` -> ``info``; ``transcribe`` (optional: its language), ``audio-start``, ``audio-chunk``...,
``audio-stop`` -> one ``transcript``; the connection stays open for the next. Audio of another rate or
in stereo is converted to 16 kHz mono (the library's ``AudioChunkConverter``); what cannot be converted,
and every other bad stream, gets an ``error`` event and the connection ends, with the reason in the log.
Wyoming has no authentication: who may connect is the network's business (the role's
``IPAddressAllow=``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import socket
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioFormat, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncTcpServer

from . import __version__, formats
from .audio import SAMPLE_RATE
from .engine import Job
from .errors import ApiError
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("whisper_api.wyoming")

WIDTH, CHANNELS = 2, 1  # what the engine gets: 16-bit mono PCM at audio.SAMPLE_RATE
RATES = (8000, 96000)  # sample rates converted, lowest and highest
PROJECT = Attribution(name="homelab.gpu_passthrough whisper-api", url="https://github.com/homelab/gpu_passthrough")
FASTER_WHISPER = Attribution(name="faster-whisper (SYSTRAN) on CTranslate2", url="https://github.com/SYSTRAN/faster-whisper")
# How often a connection waiting for its transcript looks whether its client is still there.
GONE_POLL_S = 0.2


class StreamError(Exception):
    """A stream the server does not take: the client gets an error event with this text, the connection
    ends, and the log says why. ``status`` is the HTTP status of the same outcome (the metrics' label)."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_audio") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class ClientGone(Exception):
    """The client closed the connection while its transcript was being made."""


class WyomingServer:
    """The Wyoming TCP server of one app: WYOMING_HOST (else HOST) and WYOMING_PORT, with an optional
    mDNS announcement (WYOMING_ZEROCONF)."""

    def __init__(self, settings: Settings, engine, metrics: Metrics) -> None:
        self.settings, self.engine, self.metrics = settings, engine, metrics
        self.host, self.port = settings.wyoming_bind_host, settings.wyoming_port
        self._tcp: AsyncTcpServer | None = None
        self._zeroconf = None

    async def start(self) -> None:
        self._tcp = AsyncTcpServer(self.host, self.port)
        try:
            await self._tcp.start(lambda reader, writer: WyomingHandler(reader, writer, self))
        except OSError as exc:
            raise RuntimeError(
                f"the Wyoming server cannot listen on {self.host}:{self.port} ({exc.strerror or exc}): free the port, "
                "or set WHISPER_API_WYOMING_PORT / WHISPER_API_WYOMING_HOST, or WHISPER_API_WYOMING=false"
            ) from exc
        log.info("Wyoming server on tcp://%s:%d (no authentication: restrict who can connect)", self.host, self.port)
        if self.settings.wyoming_zeroconf:
            await self._announce()

    async def stop(self) -> None:
        if self._zeroconf is not None:
            with contextlib.suppress(Exception):
                await self._zeroconf.async_close()  # unregisters the service
            self._zeroconf = None
        if self._tcp is not None:
            await self._tcp.stop()
            self._tcp = None

    async def _announce(self) -> None:
        """Register ``<hostname>._wyoming._tcp.local.`` on every interface, with the address Home Assistant
        should connect to. A failure is logged and the server keeps serving by address and port."""
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        name = f"whisper-api-{socket.gethostname().split('.')[0]}"
        try:
            address = self.host if self.host not in ("0.0.0.0", "::", "") else _outgoing_address()
            info = AsyncServiceInfo("_wyoming._tcp.local.", f"{name}._wyoming._tcp.local.",
                                    addresses=[socket.inet_aton(address)], port=self.port,
                                    properties={"version": __version__})
            self._zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only)
            await self._zeroconf.async_register_service(info)
        except Exception as exc:  # noqa: BLE001 - discovery is a convenience: serve without it, say why
            log.error("Wyoming zeroconf announcement failed (%s: %s); Home Assistant can still be given "
                      "%s:%d by hand", type(exc).__name__, exc, self.host, self.port)
            return
        log.info("Wyoming announced over mDNS as %s._wyoming._tcp.local. at %s:%d", name, address, self.port)

    def info(self) -> Info:
        model = self.settings.model_id
        return Info(asr=[AsrProgram(
            name="whisper-api", attribution=PROJECT, installed=True, version=__version__,
            description="faster-whisper speech-to-text sharing one model and GPU with an OpenAI-compatible API",
            models=[AsrModel(name=model, attribution=FASTER_WHISPER, installed=True, version=None,
                             description=f"{model} ({self.engine.device_label}, {self.engine.compute_type})",
                             languages=list(self.engine.languages))],
        )])

    def count(self, route: str, status: int) -> None:
        self.metrics.requests.labels("wyoming", route, "-", str(status)).inc()


def _outgoing_address() -> str:
    """The address of the interface that carries multicast (what the wyoming library's helper does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("224.0.0.251", 5353))
        return probe.getsockname()[0]


def _wav(pcm: bytes) -> bytes:
    """16-bit mono PCM at SAMPLE_RATE as a WAV file: the engine's one audio input (audio.decode)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    return buf.getvalue()


class WyomingHandler(AsyncEventHandler):
    """One client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: WyomingServer) -> None:
        super().__init__(reader, writer)
        self.server = server
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.limit_bytes = int(server.settings.max_duration_s * SAMPLE_RATE) * WIDTH * CHANNELS
        self._reset()

    def _reset(self) -> None:
        self.language: str | None = None
        self.format: AudioFormat | None = None  # audio-start's; None: no stream open
        self.converter = AudioChunkConverter(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS)
        self.pcm = bytearray()

    async def run(self) -> None:
        try:
            await super().run()
        except (ConnectionError, EOFError) as exc:  # reset, or gone in the middle of an event
            log.debug("Wyoming %s: connection lost: %s", self.peer, exc)

    async def disconnect(self) -> None:
        if self.format is not None:
            log.warning("Wyoming %s: the client went away in the middle of a stream (%.1f s of audio received, "
                        "no audio-stop); dropped", self.peer, len(self.pcm) / (SAMPLE_RATE * WIDTH))
            self.server.count("transcribe", 499)
            self._reset()

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self._handle(event)
        except StreamError as exc:
            log.warning("Wyoming %s: %s; closing the connection", self.peer, exc.message)
            self.server.count("transcribe", exc.status)
            self._reset()
            with contextlib.suppress(ConnectionError):
                await self.write_event(Error(text=exc.message, code=exc.code).event())
            return False
        except (KeyError, TypeError, ValueError) as exc:  # a field missing or of the wrong type
            return await self.handle_event_error(event, exc)
        except ClientGone:
            log.warning("Wyoming %s: the client went away before its transcript; the transcription was cancelled",
                        self.peer)
            self.server.count("transcribe", 499)
            self._reset()
            return False

    async def handle_event_error(self, event: Event, exc: Exception) -> bool:
        message = f"a malformed {event.type} event ({type(exc).__name__}: {exc}); see the Wyoming protocol's events"
        log.warning("Wyoming %s: %s; closing the connection", self.peer, message)
        self.server.count("transcribe", 400)
        self._reset()
        with contextlib.suppress(ConnectionError):
            await self.write_event(Error(text=message, code="invalid_event").event())
        return False

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.server.info().event())
            self.server.count("describe", 200)
        elif Transcribe.is_type(event.type):
            language = Transcribe.from_event(event).language
            try:
                self.language = formats.normalize_language(language) if language else None
            except ValueError as exc:
                raise StreamError(f"transcribe: {exc}", code="invalid_language") from None
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            _check_format(start, "audio-start")
            self.format, self.pcm = AudioFormat(start.rate, start.width, start.channels), bytearray()
        elif AudioChunk.is_type(event.type):
            self._add(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            if self.format is None:
                raise StreamError("audio-stop without audio-start: send audio-start, the audio-chunks, then audio-stop")
            await self._transcribe()
        else:
            log.debug("Wyoming %s: ignored a %s event", self.peer, event.type)
        return True

    def _add(self, chunk: AudioChunk) -> None:
        if self.format is None:
            raise StreamError("audio-chunk without audio-start: send audio-start (rate, width, channels) first")
        if (chunk.rate, chunk.width, chunk.channels) != (self.format.rate, self.format.width, self.format.channels):
            raise StreamError(
                f"audio-chunk of {chunk.rate} Hz, width {chunk.width}, {chunk.channels} channel(s) in a stream "
                f"started as {self.format.rate} Hz, width {self.format.width}, {self.format.channels} channel(s): "
                "keep one format per stream")
        if len(chunk.audio) % (chunk.width * chunk.channels):
            raise StreamError(f"audio-chunk of {len(chunk.audio)} bytes is not whole {chunk.width}-byte samples "
                              f"of {chunk.channels} channel(s)")
        self.pcm += self.converter.convert(chunk).audio
        if len(self.pcm) > self.limit_bytes:
            limit = self.server.settings.max_duration_s
            raise StreamError(f"the stream is longer than the limit of {limit:g} s (WHISPER_API_MAX_DURATION_S): "
                              "send audio-stop sooner or raise the limit", code="audio_too_long")

    async def _transcribe(self) -> None:
        pcm, language = bytes(self.pcm), self.language
        self._reset()
        if not pcm:
            raise StreamError("no audio between audio-start and audio-stop: send audio-chunks")
        job = Job(data=_wav(pcm), language=language, name="Wyoming stream", protocol="wyoming")
        try:
            future = self.server.engine.submit(job)
            result = await self._result(future)
        except ApiError as exc:  # busy, loading, bad audio, the processing time limit
            raise StreamError(exc.message, status=exc.status, code=exc.code or "error") from None
        except ClientGone:
            raise
        except Exception as exc:  # noqa: BLE001 - the engine's 500: this stream fails, the server goes on
            log.exception("Wyoming %s: transcription failed", self.peer)
            raise StreamError(f"transcription failed: {type(exc).__name__}: {exc}", status=500,
                              code="server_error") from None
        text = "".join(segment.text for segment in result.segments).strip()
        await self.write_event(Transcript(text=text, language=result.language).event())
        self.server.count("transcribe", 200)
        log.info("Wyoming %s: %.1f s of audio transcribed in %.2f s", self.peer, result.duration,
                 result.processing_time)

    async def _result(self, future: concurrent.futures.Future):
        """The engine's result; when the client goes away first, the job is cancelled (the engine drops
        what is left of it) and ClientGone raised."""
        waiter = asyncio.wrap_future(future)
        while True:
            done, _pending = await asyncio.wait({waiter}, timeout=GONE_POLL_S)
            if done:
                return waiter.result()
            if self.reader.at_eof() or self.writer.is_closing():
                future.cancel()
                waiter.cancel()
                raise ClientGone


def _check_format(fmt: AudioFormat, what: str) -> None:
    """16-bit PCM, mono or stereo, 8-96 kHz: what the converter turns into the engine's format."""
    if fmt.width != WIDTH:
        raise StreamError(f"{what} says sample width {fmt.width} byte(s): this server takes 16-bit PCM (width 2); "
                          "convert the audio before sending it")
    if fmt.channels not in (1, 2):
        raise StreamError(f"{what} says {fmt.channels} channel(s): send mono or stereo audio")
    if not RATES[0] <= fmt.rate <= RATES[1]:
        raise StreamError(f"{what} says {fmt.rate} Hz: send audio at {RATES[0]}-{RATES[1]} Hz "
                          f"(it is converted to {SAMPLE_RATE} Hz)")
