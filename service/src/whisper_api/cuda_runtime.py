# SPDX-License-Identifier: GPL-3.0-or-later
"""The CUDA runtime libraries CTranslate2 loads on CUDA: where they are, and loading them by hand.

The pinned CTranslate2 4.8.5 wheel (``ctranslate2.libs/libctranslate2-*.so``) links the CUDA runtime
statically and dlopens only ``libcuda.so.1`` (from the NVIDIA driver) and ``libcublas.so.12``, which
needs ``libcublasLt.so.12`` (both in the pip wheel ``nvidia-cublas-cu12``, under
``site-packages/nvidia/cublas/lib``). Nothing references cuDNN.

A pip-installed cuBLAS is not on the linker's path, so :func:`preload` loads it by its full path with
``RTLD_GLOBAL`` before CTranslate2 touches CUDA: the later ``dlopen("libcublas.so.12")`` of CTranslate2
then finds the already loaded library by its soname, with no ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("whisper_api.cuda")

SONAMES = ("libcuda.so.1", "libcublas.so.12", "libcublasLt.so.12")
# What provides each library: the hint a missing one is reported with.
PROVIDERS = {
    "libcuda.so.1": "install and load the NVIDIA driver (it ships libcuda.so.1)",
    "libcublas.so.12": "install nvidia-cublas-cu12 into the service's venv (pip) or CUDA 12 cuBLAS system-wide",
    "libcublasLt.so.12": "install nvidia-cublas-cu12 into the service's venv (pip) or CUDA 12 cuBLAS system-wide",
}
# Load order of preload(): libcublas.so.12 needs libcublasLt.so.12.
_PRELOAD_ORDER = ("libcublasLt.so.12", "libcublas.so.12")
_RTLD_DI_LINKMAP = 2


def venv_library_dirs() -> list[Path]:
    """The ``nvidia/*/lib`` directories of the installed ``nvidia-*`` pip packages (e.g. nvidia-cublas-cu12)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs: list[Path] = []
    for base in spec.submodule_search_locations:
        dirs.extend(sorted(p for p in Path(base).glob("*/lib") if p.is_dir()))
    return dirs


def _venv_path(soname: str) -> str | None:
    for directory in venv_library_dirs():
        candidate = directory / soname
        if candidate.is_file():
            return str(candidate.resolve())
    return None


def _ldconfig_paths() -> dict[str, str]:
    """soname -> path from the linker cache (``ldconfig -p``), 64-bit entries first. Loads nothing."""
    exe = shutil.which("ldconfig") or next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None)
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10, check=True).stdout  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return {}
    entries: dict[str, list[tuple[bool, str]]] = {}
    for line in out.splitlines():
        name, sep, path = line.strip().partition(" => ")
        soname, _sp, flags = name.partition(" ")
        if sep and soname in SONAMES:
            entries.setdefault(soname, []).append(("64" in flags, path.strip()))
    # The cache lists in search order: the first 64-bit entry, else the first one.
    return {soname: next((p for wide, p in found if wide), found[0][1]) for soname, found in entries.items()}


def _system_path(soname: str, cache: dict[str, str]) -> str | None:
    for directory in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":")):
        candidate = Path(directory) / soname
        if candidate.is_file():
            return str(candidate.resolve())
    path = cache.get(soname)
    return str(Path(path).resolve()) if path and os.path.exists(path) else None


def locate() -> dict[str, str | None]:
    """soname -> absolute path (symlinks resolved) or None: the venv's nvidia packages first, then the
    system linker's path (LD_LIBRARY_PATH, the ldconfig cache). Loads nothing."""
    cache = _ldconfig_paths()
    return {soname: _venv_path(soname) or _system_path(soname, cache) for soname in SONAMES}


class _LinkMap(ctypes.Structure):
    _fields_ = [("l_addr", ctypes.c_void_p), ("l_name", ctypes.c_char_p)]


def _dlinfo():
    for lib in (None, "libdl.so.2"):
        try:
            func = ctypes.CDLL(lib).dlinfo
        except (OSError, AttributeError):
            continue
        func.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        return func
    return None


def _mapped_path(soname: str) -> str | None:
    """The file a loaded library was mapped from, read from /proc/self/maps (by its name's stem)."""
    stem = soname.split(".so", 1)[0] + ".so"
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(None, 5)[-1]
                if path.startswith("/") and os.path.basename(path).startswith(stem):
                    return path
    except OSError:
        return None
    return None


def loaded_path(handle: ctypes.CDLL, soname: str) -> str | None:
    """The absolute path of the file behind a loaded library (dlinfo's link map, else /proc/self/maps)."""
    dlinfo = _dlinfo()
    if dlinfo is not None:
        link_map = ctypes.POINTER(_LinkMap)()
        if dlinfo(handle._handle, _RTLD_DI_LINKMAP, ctypes.byref(link_map)) == 0 and link_map:  # noqa: SLF001
            name = link_map.contents.l_name
            if name and name.startswith(b"/"):
                return os.path.realpath(name.decode(errors="replace"))
    return _mapped_path(soname)


def resolve(soname: str) -> str | None:
    """Whether ``dlopen(soname)`` succeeds in this process (what CTranslate2 does), and the file it gives."""
    try:
        handle = ctypes.CDLL(soname)
    except OSError:
        return None
    return loaded_path(handle, soname) or soname


def preload() -> dict[str, str | None]:
    """Load the venv's cuBLAS (libcublasLt, then libcublas) by full path with RTLD_GLOBAL, then check that
    every library in SONAMES resolves by its soname. Returns soname -> the file it resolves to, or None.

    Call it only when CUDA is wanted: it maps cuBLAS (hundreds of MB) into the process."""
    for soname in _PRELOAD_ORDER:
        path = _venv_path(soname)
        if path is None:
            continue
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            log.warning("could not load %s: %s", path, exc)
    return {soname: resolve(soname) for soname in SONAMES}


def missing_reason(libraries: dict[str, str | None]) -> str | None:
    """One sentence naming the first missing library and what provides it; None when all are found."""
    for soname in SONAMES:
        if not libraries.get(soname):
            return f"{soname} not found: {PROVIDERS[soname]}"
    return None
