# SPDX-License-Identifier: GPL-3.0-or-later
"""Output formats: OpenAI's json, text, srt, verbose_json, vtt, and the homelab guide's /transcribe shape."""

from __future__ import annotations

import math

from .result import Segment, Transcription

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")

# Whisper's language codes and the names OpenAI's verbose_json reports.
LANGUAGE_NAMES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
_NAME_TO_CODE = {name: code for code, name in LANGUAGE_NAMES.items()}


def normalize_language(value: str | None) -> str | None:
    """Accept a code (``en``) or a name (``English``); return the code, None for auto-detect."""
    if value is None or value.strip() == "" or value.strip().lower() == "auto":
        return None
    v = value.strip().lower()
    if v in LANGUAGE_NAMES:
        return v
    if v in _NAME_TO_CODE:
        return _NAME_TO_CODE[v]
    raise ValueError(f"unknown language {value!r}: use an ISO-639-1 code such as 'en', 'de', 'es'")


def _clamped(result: Transcription) -> list[tuple[float, float, Segment]]:
    """Segment times clamped into [0, duration] and made monotonic (subtitle players require both)."""
    out = []
    prev_start = 0.0
    for seg in result.segments:
        start = min(max(seg.start, prev_start, 0.0), result.duration)
        end = min(max(seg.end, start), result.duration)
        out.append((start, end, seg))
        prev_start = start
    return out


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def to_srt(result: Transcription) -> str:
    blocks = []
    for i, (start, end, seg) in enumerate(_clamped(result), start=1):
        blocks.append(f"{i}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{seg.text.strip()}\n")
    return "\n".join(blocks)


def to_vtt(result: Transcription) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, seg in _clamped(result):
        blocks.append(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{seg.text.strip()}\n")
    return "\n".join(blocks)


def usage(result: Transcription) -> dict:
    return {"type": "duration", "seconds": int(math.ceil(result.duration))}


def to_verbose_json(result: Transcription, granularities: tuple[str, ...]) -> dict:
    body: dict = {
        "task": result.task,
        "language": LANGUAGE_NAMES.get(result.language, result.language),
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    clamped = _clamped(result)
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": seg.id,
                "seek": seg.seek,
                "start": round(start, 3),
                "end": round(end, 3),
                "text": seg.text,
                "tokens": seg.tokens,
                "temperature": seg.temperature,
                "avg_logprob": seg.avg_logprob,
                "compression_ratio": seg.compression_ratio,
                "no_speech_prob": seg.no_speech_prob,
            }
            for start, end, seg in clamped
        ]
    if "word" in granularities:
        words = []
        for seg in result.segments:
            for w in seg.words or []:
                start = min(max(w.start, 0.0), result.duration)
                words.append({"word": w.word.strip(), "start": round(start, 3),
                              "end": round(min(max(w.end, start), result.duration), 3)})
        body["words"] = words
    body["usage"] = usage(result)
    return body


def render(result: Transcription, response_format: str, granularities: tuple[str, ...] = ()) -> tuple[object, str]:
    """(body, media type): a dict for JSON formats, a str for the text ones."""
    if response_format == "json":
        return {"text": result.text, "usage": usage(result)}, "application/json"
    if response_format == "text":
        return result.text + "\n", "text/plain; charset=utf-8"
    if response_format == "srt":
        return to_srt(result), "text/plain; charset=utf-8"
    if response_format == "vtt":
        return to_vtt(result), "text/vtt; charset=utf-8"
    if response_format == "verbose_json":
        return to_verbose_json(result, granularities), "application/json"
    raise ValueError(response_format)


def guide_response(result: Transcription, include_segments: bool) -> dict:
    """The homelab guide's /transcribe body: text, language, duration, processing_time, segments."""
    segments = None
    if include_segments:
        segments = [
            {
                "id": seg.id,
                "start": round(start, 3),
                "end": round(end, 3),
                "text": seg.text.strip(),
                "words": [
                    {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3),
                     "probability": round(w.probability, 4)}
                    for w in (seg.words or [])
                ],
            }
            for start, end, seg in _clamped(result)
        ]
    return {
        "text": result.text,
        "language": result.language,
        "duration": round(result.duration, 3),
        "processing_time": round(result.processing_time, 3),
        "segments": segments,
    }
