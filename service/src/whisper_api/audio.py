# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio input: decode any container FFmpeg knows (through PyAV) to 16 kHz mono float32, with checks.

Errors name the problem: empty file, not audio, no audio stream, truncated/corrupt, too long.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16000
SUPPORTED = "wav, mp3, m4a, flac, ogg, webm (anything FFmpeg decodes)"
# Containers whose header states the exact duration: a body shorter than that is a truncated file.
_EXACT_DURATION_FORMATS = {"flac", "wav", "aiff", "mov,mp4,m4a,3gp,3g2,mj2", "caf"}


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, 16 kHz
    format_name: str

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode(data: bytes | BinaryIO, *, max_duration_s: float, name: str = "file") -> DecodedAudio:
    """Decode ``data`` or raise :class:`AudioError` saying what is wrong with it."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise AudioError(f"the {name} is empty (0 bytes): send an audio file ({SUPPORTED})", param="file")
        _check_wav_complete(bytes(data[:1 << 16]), len(data), name)
        stream: BinaryIO = io.BytesIO(data)
    else:
        stream = data
        pos = stream.tell()
        stream.seek(0, io.SEEK_END)
        if stream.tell() == 0:
            raise AudioError(f"the {name} is empty (0 bytes): send an audio file ({SUPPORTED})", param="file")
        stream.seek(pos)

    try:
        container = av.open(stream, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioError(
            f"the {name} could not be decoded as audio ({_ffmpeg_reason(exc)}); supported: {SUPPORTED}", param="file"
        ) from exc

    with container:
        if not container.streams.audio:
            raise AudioError(f"the {name} ({container.format.name}) has no audio stream", param="file")
        astream = container.streams.audio[0]
        declared = _declared_duration(container, astream)
        limit_samples = int(max_duration_s * SAMPLE_RATE)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        error: Exception | None = None
        try:
            for frame in container.decode(astream):
                frame.pts = None  # let the resampler handle gaps itself
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += arr.shape[0]
                if total > limit_samples:
                    raise AudioError(
                        f"the audio is longer than the limit of {max_duration_s:g} s "
                        f"(WHISPER_API_MAX_DURATION_S): split it or raise the limit",
                        param="file",
                        code="audio_too_long",
                    )
            for out in resampler.resample(None):
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                total += arr.shape[0]
        except AudioError:
            raise
        except (av.error.FFmpegError, ValueError) as exc:
            error = exc

        fmt = container.format.name

    if error is not None:
        raise AudioError(
            f"the {name} is corrupt or truncated: decoding stopped after {total / SAMPLE_RATE:.2f} s "
            f"({_ffmpeg_reason(error)})",
            param="file",
        )
    if total == 0:
        raise AudioError(f"the {name} ({fmt}) contains no audio samples", param="file")
    if total > limit_samples:
        raise AudioError(
            f"the audio is longer than the limit of {max_duration_s:g} s (WHISPER_API_MAX_DURATION_S): "
            f"split it or raise the limit",
            param="file",
            code="audio_too_long",
        )
    decoded_s = total / SAMPLE_RATE
    if declared is not None and fmt in _EXACT_DURATION_FORMATS and decoded_s < declared - max(0.5, 0.02 * declared):
        raise AudioError(
            f"the {name} is truncated: its header says {declared:.2f} s of audio but only "
            f"{decoded_s:.2f} s could be decoded; send the complete file",
            param="file",
        )
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    return DecodedAudio(samples=samples, format_name=fmt)


def _check_wav_complete(head: bytes, size: int, name: str) -> None:
    """FFmpeg clamps a WAV's duration to the bytes present; the RIFF data chunk still says how many there were."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"data":
            if length in (0, 0xFFFFFFFF):  # streamed WAV: length unknown
                return
            present = size - (pos + 8)
            if present < length:
                raise AudioError(
                    f"the {name} is truncated: its WAV header announces {length} bytes of audio but only "
                    f"{present} are present; send the complete file",
                    param="file",
                )
            return
        pos += 8 + length + (length & 1)


def _declared_duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _ffmpeg_reason(exc: Exception) -> str:
    strerror = getattr(exc, "strerror", None)
    return strerror or str(exc) or type(exc).__name__
