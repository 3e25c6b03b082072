# SPDX-License-Identifier: GPL-3.0-or-later
"""One typed settings object, read from ``WHISPER_API_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "WHISPER_API_"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Service settings. Every field is ``WHISPER_API_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Model
    model: str = Field(
        "Systran/faster-whisper-small",
        description="Hub id (e.g. deepdml/faster-whisper-large-v3-turbo-ct2), size name, or local CTranslate2 model dir.",
    )
    model_cache_dir: Path | None = Field(None, description="Where hub models are downloaded/cached.")
    local_files_only: bool = Field(False, description="Never contact the hub: load from the cache dir only (air-gapped).")
    served_model_name: str | None = Field(
        None, description="Model id shown in /v1/models and /health; default: MODEL (its directory name for a path)."
    )
    model_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["whisper-1"],
        description="Other model ids accepted for the served model (comma-separated).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="auto: CUDA when CTranslate2 sees a GPU and it can run the model, else CPU; cuda: CUDA wanted, "
        "CPU fallback with the reason in /health (see REQUIRE_GPU).",
    )
    device_index: int = Field(0, ge=0, description="CUDA device index.")
    require_gpu: bool = Field(
        False,
        description="Fail (/health 503 failed, --check exit 1) instead of falling back to the CPU when CUDA cannot run "
        "(no device, a CUDA library missing, compute capability < 5.3, model too big, load error); ignored with DEVICE=cpu.",
    )
    compute_type: str = Field("auto", description="auto: float16 on CUDA, int8 on CPU; or any CTranslate2 compute type.")
    cpu_threads: int = Field(
        0, ge=0, description="CTranslate2 threads per worker (0: CTranslate2's default); with WORKERS=0 on the CPU: the "
        "CPUs to use, one worker per CPU up to 4, each with twice its share of threads (0: every CPU this process may use).")

    # Decoding
    beam_size: int = Field(5, ge=1, le=20, description="Beam search width (1: greedy, fastest).")
    batched: bool = Field(
        True, description="Batch across requests: each worker decodes windows (up to 30 s, cut in pauses) of every waiting "
        "request together; false: one request at a time per worker, with faster-whisper's transcribe.",
    )
    batch_size: int = Field(8, ge=1, le=128, description="Windows (up to 30 s each) per batch when BATCHED is true.")
    batch_wait_ms: float = Field(
        10.0, ge=0, le=1000, description="How long a batch that is not full waits for more windows (BATCHED)."
    )
    pack_short: bool = Field(
        True, description="BATCHED with VAD_FILTER: put windows of up to 15 s from requests with the same options into "
        "one 30 s window, 1 s of silence between them, and split the segments back by their timestamps.",
    )
    vad_filter: bool = Field(
        True, description="Silero VAD: BATCHED: decode only from the first to the last speech (needed by PACK_SHORT); "
        "else drop silence before decoding.",
    )
    condition_on_previous_text: bool = Field(
        True, description="Feed the previous window's text as prompt (false curbs repetition loops); not with BATCHED, "
        "whose windows are decoded side by side.",
    )
    temperature_fallback: bool = Field(
        True, description="On temperature 0, retry windows at 0.2..1.0 when decoding fails the thresholds."
    )
    max_processing_s: float = Field(600.0, gt=0, description="Per-request processing time limit; over it the request fails (504).")

    # Concurrency
    workers: int = Field(
        0, ge=0, le=64, description="Inference worker threads (and CTranslate2 model replicas). 0: auto, 1 on CUDA; on "
        "the CPU one worker per CPU (CPU_THREADS, else every CPU), at most 4, each with twice its share of threads (measured).")
    queue_size: int = Field(8, ge=0, le=10000, description="Requests allowed to wait for a worker; beyond it: 503 + Retry-After.")

    # Input limits
    max_upload_mb: float = Field(100.0, gt=0, description="Largest accepted request body / downloaded file, in MB (413 over it).")
    max_duration_s: float = Field(3600.0, gt=0, description="Longest accepted audio, in seconds (400 over it).")

    # /transcribe/url
    allow_private_urls: bool = Field(False, description="Let /transcribe/url fetch loopback, private, link-local, reserved addresses.")
    url_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDRs fetchable even when private (e.g. a NAS: 192.168.20.5/32)."
    )
    url_timeout_s: float = Field(30.0, gt=0, description="Total time allowed to download a URL.")
    url_max_redirects: int = Field(5, ge=0, le=20, description="Redirect hops followed; each hop is checked like the first URL.")

    # HTTP
    host: str = Field("127.0.0.1", description="Bind address (0.0.0.0 to serve the LAN).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port (the guide's 8000).")
    keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="API keys (comma-separated); empty: no auth.")
    keys_file: Path | None = Field(None, description="File with one API key per line (# comments allowed).")
    metrics_public: bool = Field(False, description="Serve /metrics without an API key even when keys are set.")
    ssl_certfile: Path | None = Field(None, description="Serve HTTPS with this certificate (PEM).")
    ssl_keyfile: Path | None = Field(None, description="Private key for SSL_CERTFILE (PEM).")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="uvicorn and service log level.")

    # Wyoming (Home Assistant)
    wyoming: bool = Field(
        False, description="Also serve the Wyoming protocol (Home Assistant's speech-to-text) on WYOMING_HOST:WYOMING_PORT, "
        "with the same model, queue and limits. Wyoming has no authentication: restrict who can connect.",
    )
    wyoming_host: str | None = Field(None, description="Wyoming bind address; default: HOST.")
    wyoming_port: int = Field(10300, ge=1, le=65535, description="Wyoming TCP port (10300 by convention).")
    wyoming_zeroconf: bool = Field(
        False, description="WYOMING: announce the server over mDNS (_wyoming._tcp) so Home Assistant discovers it."
    )

    @field_validator("keys", "model_aliases", "url_allowed_networks", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("url_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP network; write CIDRs like 192.168.20.0/24") from exc
        return value

    @field_validator("compute_type")
    @classmethod
    def _compute_type(cls, value: str) -> str:
        allowed = {
            "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
            "int16", "float16", "bfloat16", "float32",
        }
        if value not in allowed:
            raise ValueError(f"{value!r} is not a CTranslate2 compute type; use one of {sorted(allowed)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("set both WHISPER_API_SSL_CERTFILE and WHISPER_API_SSL_KEYFILE, or neither")
        if self.keys_file is not None and not self.keys_file.is_file():
            raise ValueError(f"WHISPER_API_KEYS_FILE={self.keys_file} does not exist or is not a file")
        if self.wyoming and self.wyoming_port == self.port and self.wyoming_bind_host == self.host:
            raise ValueError(f"WHISPER_API_WYOMING_PORT={self.wyoming_port} is the HTTP port (WHISPER_API_PORT): "
                             "give Wyoming a port of its own (10300 by convention)")
        return self

    @property
    def model_id(self) -> str:
        """Public id of the served model."""
        if self.served_model_name:
            return self.served_model_name
        if os.path.isdir(self.model):
            return Path(self.model).resolve().name
        return self.model

    def accepted_model_ids(self) -> list[str]:
        return [self.model_id, *[a for a in self.model_aliases if a != self.model_id]]

    def api_keys(self) -> frozenset[str]:
        """Keys from KEYS and KEYS_FILE together."""
        found = set(self.keys)
        if self.keys_file is not None:
            for line in self.keys_file.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    found.add(line)
        return frozenset(found)

    @property
    def wyoming_bind_host(self) -> str:
        """Where the Wyoming server listens: WYOMING_HOST, else HOST."""
        return self.wyoming_host or self.host

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def describe_env() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README table is made from it."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = ",".join(default)
        elif isinstance(default, bool):
            default = str(default).lower()
        rows.append((ENV_PREFIX + name.upper(), "" if default is None else str(default), field.description or ""))
    return rows
