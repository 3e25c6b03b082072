# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenAI-compatible faster-whisper transcription API (homelab.gpu_passthrough's workload)."""

from __future__ import annotations

__version__ = "1.0.0"
