# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain result types shared by the engine (producer) and the output formats (consumer)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None = None


@dataclass(frozen=True)
class Transcription:
    task: str
    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)
    processing_time: float = 0.0

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()
