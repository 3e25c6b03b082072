# SPDX-License-Identifier: GPL-3.0-or-later
"""The device policy: the pure decision, its agreement with the collection's preflight, the CUDA runtime
libraries (locate, preload by soname), /metrics' device and GPU gauges, `--check`, and the real service
with WHISPER_API_DEVICE=cuda on a machine without a GPU (CPU fallback with the reason; REQUIRE_GPU fails)."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import JFK, _server
from prometheus_client import CollectorRegistry, generate_latest

from whisper_api import cuda_runtime
from whisper_api.engine import MODEL_MEMORY_MIB, CudaProbe, decide_device, model_need_mib
from whisper_api.gpu import GpuSample
from whisper_api.metrics import DeviceCollector
from whisper_api.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ALL_FOUND = {soname: f"/lib/{soname}" for soname in cuda_runtime.SONAMES}
SMALL = {"float16": 1300, "int8": 900}


def probe(**kw) -> CudaProbe:
    base = dict(devices=1, libraries=dict(ALL_FOUND), compute_capability="8.6", memory_mib=12288, model_need_mib=SMALL)
    base.update(kw)
    return CudaProbe(**base)


def settings(**kw) -> Settings:
    return Settings(model="Systran/faster-whisper-small", **kw)


# --- the pure decision ---------------------------------------------------------------------------
def test_gpu_usable():
    for device in ("auto", "cuda"):
        d = decide_device(settings(device=device), probe())
        assert (d.wanted, d.reason, d.attempts) == ("cuda", None, (("cuda", "float16"), ("cpu", "int8")))
    d = decide_device(settings(device="cuda", require_gpu=True), probe())
    assert d.attempts == (("cuda", "float16"),) and not d.failed


def test_consumer_pascal_gets_int8_and_small_cards_a_quantized_type():
    assert decide_device(settings(), probe(compute_capability="6.1")).attempts[0] == ("cuda", "int8")
    assert decide_device(settings(), probe(compute_capability="7.5", memory_mib=1024)).attempts[0] == (
        "cuda", "int8_float16")


FALLBACKS = {
    "compute capability below 5.3": (probe(compute_capability="5.2"), "compute capability 5.2"),
    "libcublas missing": (probe(libraries={**ALL_FOUND, "libcublas.so.12": None}),
                          "libcublas.so.12 not found: install nvidia-cublas-cu12"),
    "libcublasLt missing": (probe(libraries={**ALL_FOUND, "libcublasLt.so.12": None}), "libcublasLt.so.12 not found"),
    "driver missing": (probe(devices=0, libraries={**ALL_FOUND, "libcuda.so.1": None}),
                       "libcuda.so.1 not found: install and load the NVIDIA driver"),
    "model too big": (probe(memory_mib=512), "needs ~900 MiB of GPU memory even quantized; the card has 512 MiB"),
    "no device": (probe(devices=0), "CTranslate2 sees 0 CUDA device(s)"),
    "compute type needs a newer card": (probe(compute_capability="6.1"), "needs compute capability >= 7.0"),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_cuda_unusable_falls_back_to_the_cpu_with_the_reason(case):
    p, reason = FALLBACKS[case]
    ctype = "int8_float16" if case == "compute type needs a newer card" else "auto"
    d = decide_device(settings(device="cuda", compute_type=ctype), p)
    assert d.wanted == "cuda" and reason in d.reason
    assert d.attempts == (("cpu", "int8" if ctype == "auto" else "int8"),)


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_require_gpu_turns_each_fallback_into_a_failure(case):
    p, reason = FALLBACKS[case]
    ctype = "int8_float16" if case == "compute type needs a newer card" else "auto"
    d = decide_device(settings(device="auto", require_gpu=True, compute_type=ctype), p)
    assert d.failed and d.wanted == "cuda" and reason in d.reason


def test_auto_without_a_device_runs_on_the_cpu_and_says_why():
    d = decide_device(settings(device="auto"), probe(devices=0, libraries={s: None for s in cuda_runtime.SONAMES}))
    assert (d.wanted, d.attempts) == ("cpu", (("cpu", "int8"),))
    assert "CTranslate2 sees 0 CUDA device(s)" in d.reason and "libcuda.so.1" in d.reason, d.reason
    d = decide_device(settings(device="auto"), probe(devices=0, libraries=ALL_FOUND))
    assert "no CUDA device" in d.reason and "libcuda.so.1" not in d.reason, d.reason
    d = decide_device(settings(device="cpu", require_gpu=True), probe())
    assert (d.wanted, d.attempts, d.reason) == ("cpu", (("cpu", "int8"),), None)


def test_unknown_card_facts_leave_it_to_the_warm_up():
    d = decide_device(settings(), probe(compute_capability=None, memory_mib=None,
                                        cuda_compute_types=frozenset({"float32", "int8_float32"})))
    assert d.attempts[0] == ("cuda", "int8_float32") and d.reason is None


def test_model_memory_needs_by_name():
    assert model_need_mib("deepdml/faster-whisper-large-v3-turbo-ct2") == {"float16": 2600, "int8": 1700}
    assert model_need_mib("Systran/faster-whisper-small") == SMALL
    assert model_need_mib("my-own-model") is None


# --- agreement with the collection's preflight ------------------------------------------------------
def _collection_ctranslate2(tmp_path_factory):
    root = tmp_path_factory.mktemp("collections")
    link = root / "ansible_collections" / "homelab" / "gpu_passthrough"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO)
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("ansible_collections.homelab.gpu_passthrough.plugins.module_utils.ctranslate2")
    finally:
        sys.path.remove(str(root))


def _role_memory_table() -> list[dict]:
    return yaml.safe_load((REPO / "roles" / "whisper_api" / "vars" / "main.yml").read_text())["_whisper_api_model_memory"]


def test_the_model_memory_table_is_the_roles():
    assert [{"match": m, "float16": f, "int8": i} for m, f, i in MODEL_MEMORY_MIB] == _role_memory_table()


@pytest.mark.parametrize("model", ["Systran/faster-whisper-small", "deepdml/faster-whisper-large-v3-turbo-ct2",
                                   "Systran/faster-whisper-large-v3"])
def test_service_and_preflight_agree(tmp_path_factory, model):
    ct2 = _collection_ctranslate2(tmp_path_factory)
    row = next(r for r in _role_memory_table() if r["match"] in model.lower())
    need = {"float16": row["float16"], "int8": row["int8"]}
    for cc in ("3.5", "5.0", "5.2", "5.3", "6.1", "7.5", "8.6", "9.0"):
        for memory in (None, need["float16"] + 1024, need["float16"] - 1, need["int8"], need["int8"] - 1):
            d = decide_device(settings(device="auto"), probe(compute_capability=cc, memory_mib=memory,
                                                             model_need_mib=model_need_mib(model)))
            role_type, _why = ct2.memory_compute_type(cc, memory, need["float16"], need["int8"])
            role_ok = ct2.ct2_cuda_ok(cc) and role_type is not None
            service_ok = d.attempts[0][0] == "cuda"
            assert service_ok == role_ok, (model, cc, memory, d)
            if role_ok:
                assert d.attempts[0][1] == role_type, (model, cc, memory, d)


# --- the CUDA runtime libraries --------------------------------------------------------------------
def _fake_lib(cc: str, path: Path, soname: str, needs: Path | None = None) -> None:
    src = path.with_suffix(".c")
    src.write_text(f"int fake_{soname.split('.')[0]}(void) {{ return 1; }}\n")
    cmd = [cc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(path), str(src)]
    if needs is not None:
        cmd += [str(needs)]
    subprocess.run(cmd, check=True, capture_output=True)


def test_locate_and_preload_find_venv_libraries_by_soname(tmp_path):
    """A fake nvidia-cublas-cu12 layout (site/nvidia/cublas/lib): locate() finds it, preload() makes
    dlopen("libcublas.so.12") succeed with no LD_LIBRARY_PATH, in a fresh interpreter."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the fake cuBLAS")
    lib = tmp_path / "site" / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True)
    _fake_lib(cc, lib / "libcublasLt.so.12", "libcublasLt.so.12")
    _fake_lib(cc, lib / "libcublas.so.12", "libcublas.so.12", needs=lib / "libcublasLt.so.12")
    code = (
        "import ctypes, json, sys\n"
        f"sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
        "from whisper_api import cuda_runtime\n"
        "before = cuda_runtime.locate()\n"
        "try:\n    ctypes.CDLL('libcublas.so.12'); early = True\nexcept OSError:\n    early = False\n"
        "after = cuda_runtime.preload()\n"
        "print(json.dumps({'before': before, 'early': early, 'after': after}))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=60)
    got = json.loads(out.stdout)
    for key in ("before", "after"):
        assert got[key]["libcublas.so.12"] == str(lib / "libcublas.so.12"), got
        assert got[key]["libcublasLt.so.12"] == str(lib / "libcublasLt.so.12"), got
    assert got["early"] is False  # not on the linker's path: only the preload makes the soname resolve
    assert got["after"]["libcuda.so.1"] == got["before"]["libcuda.so.1"]


def test_missing_reason_names_the_library():
    assert cuda_runtime.missing_reason(ALL_FOUND) is None
    assert cuda_runtime.missing_reason({**ALL_FOUND, "libcublasLt.so.12": None}).startswith("libcublasLt.so.12 not found")


# --- /metrics --------------------------------------------------------------------------------------
def _scrape(state, sample) -> str:
    registry = CollectorRegistry()
    registry.register(DeviceCollector(lambda: state, lambda: sample))
    return generate_latest(registry).decode()


def test_device_info_and_gpu_gauges():
    sample = GpuSample(utilization_percent=37.0, memory_used_bytes=2 << 30, memory_total_bytes=12 << 30,
                       temperature_celsius=55.0)
    cpu = _scrape(("cpu", "int8", "cuda"), sample)
    assert 'whisper_api_device_info{compute_type="int8",device="cpu",wanted="cuda"} 1.0' in cpu
    assert "whisper_api_gpu_" not in cpu
    gpu = _scrape(("cuda", "float16", "cuda"), sample)
    assert 'whisper_api_device_info{compute_type="float16",device="cuda",wanted="cuda"} 1.0' in gpu
    samples = dict(line.rsplit(" ", 1) for line in gpu.splitlines() if line.startswith("whisper_api_gpu_"))
    assert {k: float(v) for k, v in samples.items()} == {
        "whisper_api_gpu_utilization_percent": 37.0, "whisper_api_gpu_memory_used_bytes": float(2 << 30),
        "whisper_api_gpu_memory_total_bytes": float(12 << 30), "whisper_api_gpu_temperature_celsius": 55.0}
    assert "whisper_api_gpu_" not in _scrape(("cuda", "float16", "cuda"), None)  # NVML failed: no gauges, no error


def test_nvml_without_a_driver_answers_none():
    from whisper_api.gpu import Nvml

    nvml = Nvml()
    if nvml.info(0) is not None:
        pytest.skip("this machine has a GPU driver")
    assert nvml.sample(0) is None and nvml.info(0) is None


# --- whisper-api --check ---------------------------------------------------------------------------
def _check(*args: str, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "whisper-api"
    return subprocess.run([str(exe), "--check", *args], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_check_lists_the_libraries_and_the_decision():
    proc = _check(WHISPER_API_DEVICE="cuda")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for soname in cuda_runtime.SONAMES:
        assert any(line == f"{soname}: missing" or line.startswith(f"{soname}: found: /") for line in lines), lines
    assert "device_wanted: cuda" in lines and "device: cpu" in lines
    reason = next(line for line in lines if line.startswith("device_reason: "))
    assert reason != "device_reason: none"


def test_check_fails_with_require_gpu_and_says_why():
    proc = _check("--json", WHISPER_API_DEVICE="cuda", WHISPER_API_REQUIRE_GPU="true")
    assert proc.returncode == 1
    body = json.loads(proc.stdout)
    assert body["ok"] is False and body["device_wanted"] == "cuda" and body["device"] == "none"
    assert set(body["cuda_libraries"]) == set(cuda_runtime.SONAMES)
    assert body["device_reason"] and body["device_reason"] in proc.stderr


# --- the real service with WHISPER_API_DEVICE=cuda on this machine (no GPU) -------------------------
def test_device_cuda_without_a_gpu_serves_on_the_cpu_and_says_why(model_dir):
    srv = _server("cuda-fallback", model_dir, device="cuda")
    try:
        srv.wait_healthy()
        with srv.client() as c:
            health = c.get("/health").json()
            r = c.post("/transcribe", files={"file": ("jfk.flac", JFK.read_bytes())})
            metrics = c.get("/metrics").text
    finally:
        srv.stop()
    print(json.dumps(health))
    assert health["status"] == "healthy" and health["device"] == "cpu" and health["compute_type"] == "int8"
    assert health["device_wanted"] == "cuda" and health["gpu_available"] is False
    assert "not found" in health["device_reason"] or "CUDA device" in health["device_reason"]
    assert set(health["cuda_libraries"]) == set(cuda_runtime.SONAMES)
    assert r.status_code == 200
    assert 'whisper_api_device_info{compute_type="int8",device="cpu",wanted="cuda"} 1.0' in metrics
    assert "whisper_api_gpu_" not in metrics
    assert health["device_reason"] in srv.log()


def test_require_gpu_without_a_gpu_fails_with_the_reason(model_dir):
    srv = _server("cuda-required", model_dir, device="cuda", require_gpu="true")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(srv.url + "/health", timeout=2)
                if r.json()["status"] != "loading":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        metrics = httpx.get(srv.url + "/metrics", timeout=5).text
    finally:
        srv.stop()
    body = r.json()
    assert r.status_code == 503 and body["status"] == "failed"
    assert body["device_wanted"] == "cuda" and body["device_reason"]
    assert "WHISPER_API_REQUIRE_GPU=true but CUDA cannot be used" in body["error"]
    assert body["device_reason"] in body["error"] and body["device_reason"] in srv.log()
    assert 'whisper_api_device_info{compute_type="none",device="none",wanted="cuda"} 1.0' in metrics
