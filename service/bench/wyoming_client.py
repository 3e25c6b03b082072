# SPDX-License-Identifier: GPL-3.0-or-later
"""Send WAV files to a Wyoming speech-to-text server all at once, one connection per file, and print
one JSON object: the wall time and, per file, its latency and transcript. With --sequential, one
connection after the other (one client): each latency from that file's own start.

Runs in the wyoming-faster-whisper venv of the benchmark (it has ``wyoming==1.10.2``), not in the
service's, or in the service's venv for its own Wyoming server: ``python wyoming_client.py [--sequential]
HOST PORT LANGUAGE FILE...``. Each connection sends Transcribe,
AudioStart, AudioChunk... (1024 frames each), AudioStop, and reads events until the Transcript.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

FRAMES = 1024


async def one(host: str, port: int, language: str, path: str, t0: float) -> dict:
    with wave.open(path, "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        pcm = wav.readframes(wav.getnframes())
    step = FRAMES * width * channels
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), step):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=pcm[i:i + step]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError(f"{path}: the server closed the connection before a transcript")
            if Transcript.is_type(event.type):
                return {"latency_s": time.perf_counter() - t0, "text": Transcript.from_event(event).text}


async def main(host: str, port: int, language: str, paths: list[str], sequential: bool = False) -> dict:
    t0 = time.perf_counter()
    if sequential:
        results = [await one(host, port, language, p, time.perf_counter()) for p in paths]
    else:
        results = await asyncio.gather(*(one(host, port, language, p, t0) for p in paths))
    return {"wall_s": time.perf_counter() - t0, "results": list(results)}


if __name__ == "__main__":
    ARGS = sys.argv[1:]
    SEQUENTIAL = ARGS[:1] == ["--sequential"]
    ARGS = ARGS[1:] if SEQUENTIAL else ARGS
    print(json.dumps(asyncio.run(main(ARGS[0], int(ARGS[1]), ARGS[2], ARGS[3:], sequential=SEQUENTIAL))))
