"""The Raspberry Pi class deployed for real to an emulated Raspberry Pi 5 (tests/emulated_pi.py).

``ansible-playbook deploy.yml`` with the device in the ``rpi`` group: the controller (this machine, x86)
collects an aarch64 wheelhouse with ``pip download --platform``, exports the class's models, and the Pi
installs offline (it has no route to any package index), runs the smoke test, and then transcribes one
built-in utterance with whisper-tiny.en on onnxruntime, litert, ctranslate2 and whispercpp at int8.
Those results must reach InfluxDB through the TLS broker and the collector as an ``rpi`` device with
its own host name, energy from the ``rpi-pmic`` source marked as an estimate, the transcript of the x86
run of the same configuration, and the emulation mark everywhere. A second playbook run changes nothing.

The timings measured here are qemu's, not a Pi's: the results carry ``sysinfo.emulated``, and this test
prints them only as such.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from edgebench.collector.grafana.dashboards import fleet_overview
from edgebench.collector.grafana.verify import verify_dashboard
from tests.ansible_env import run_playbook
from tests.conftest import run_cli
from tests.emulated_pi import HOSTNAME, EmulatedPi, ensure_rootfs
from tests.test_ansible import (  # the x86 deployment's helpers and fixtures
    FLEET,
    PASSWORDS,
    _assert_no_secrets,
    _assert_ok,
    _influx_rows,
    _report,
    deploy_source,  # noqa: F401 (a fixture)
    needs_ansible,
    needs_root,
    server_and_device,
    start_server_stack,
    vault,  # noqa: F401 (a fixture)
    wheelhouses,  # noqa: F401 (a fixture)
)

RUNTIMES = ("onnxruntime", "litert", "ctranslate2", "whispercpp")
# One utterance of the built-in set per runtime (a seeded draw): emulation is ~300x slower than a Pi.
TRANSCRIBE = (
    "--model whisper-tiny.en --precision int8 --scenario transcribe --dataset builtin --limit 1 --seed 3 "
    "--warmup 0 --min-iterations 1 --min-duration 0"
)
VENV_BUDGET_MIB = 350


@pytest.fixture(scope="module")
def emulated_pi(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The running emulated Pi (its users are marked needs_root: binfmt_misc, namespaces, mounts)."""
    base = tmp_path_factory.mktemp("emulated-pi")
    t0 = time.monotonic()
    rootfs, built_s = ensure_rootfs(base / "debootstrap.log")
    what = f"built in {built_s:.0f} s" if built_s else "reused from the cache"
    print(f"\n[rpi] arm64 root filesystem {rootfs}: {what}")
    pi = EmulatedPi(base / "device", rootfs)
    try:
        pi.start()
    except Exception:
        pi.stop()
        raise
    print(f"[rpi] emulated Pi 5 up in {time.monotonic() - t0:.0f} s")
    yield pi
    pi.stop()


@needs_root
def test_emulated_pi_is_an_isolated_arm64_pi5(emulated_pi: EmulatedPi) -> None:
    r = emulated_pi.ssh(
        "uname -m; hostname; cat /sys/firmware/devicetree/base/model; echo; vcgencmd get_throttled; "
        "python3 -c 'import platform; print(platform.python_version())'"
    )
    assert r.returncode == 0, r.stderr
    arch, host, model, throttled, python = r.stdout.split("\n")[:5]
    assert (arch, host, model.rstrip("\x00"), throttled) == (
        "aarch64",
        HOSTNAME,
        "Raspberry Pi 5 Model B Rev 1.0",
        "throttled=0x0",
    )
    assert python.startswith("3.11")
    no_net = emulated_pi.ssh("python3 -c \"import socket; socket.create_connection(('pypi.org', 443), 5)\"")
    assert no_net.returncode != 0, "the emulated Pi can reach pypi.org: it is not isolated"


def _agent(pi: EmulatedPi, args: str, timeout: float = 1800) -> tuple[int, str, str]:
    """``edgebench-agent`` on the Pi with the deployed configuration and the unit's environment."""
    env = "HF_HUB_OFFLINE=1 EDGEBENCH_DATA_DIR=/var/lib/edgebench EDGEBENCH_CACHE_DIR=/var/cache/edgebench"
    r = pi.ssh(f"{env} /opt/edgebench/venv/bin/edgebench-agent {args}", timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@needs_root
@needs_ansible
def test_deploy_rpi_class_and_whisper_results_reach_influxdb(  # ~10 min: emulated installs and inference
    tmp_path: Path,
    deploy_source: Path,  # noqa: F811
    wheelhouses: Path,  # noqa: F811
    vault: tuple[Path, Path],  # noqa: F811
    emulated_pi: EmulatedPi,
) -> None:
    pi = emulated_pi
    server_root, ports, inventory, extra = server_and_device(
        tmp_path,
        wheelhouses,
        pi,
        f"[rpi]\n{HOSTNAME} {pi.inventory_vars()}",
        {
            # The session's cache: exports other tests made are reused (as a controller would).
            "edgebench_controller_cache": os.environ["EDGEBENCH_CACHE_DIR"],
            # The class's own exports minus the conformer's (not run here; it only costs CI time).
            "agent_exports": [
                {"model": "whisper-tiny.en", "to": "onnx", "quantize": "int8"},
                {"model": "whisper-tiny.en", "to": "tflite", "quantize": "int8"},
                {"model": "whisper-tiny.en", "to": "ctranslate2"},
                {"model": "whisper-tiny.en", "to": "ggml", "quantize": "q8_0"},
                {"model": "lstm-ctc:tiny", "to": "onnx"},
            ],
        },
    )
    vault_vars, vault_pw = vault
    args = ("-e", f"@{extra}", "-e", f"@{vault_vars}", "--vault-password-file", str(vault_pw))
    # The mosquitto_passwd entries come from the vault: the Pi needs one too.
    assert HOSTNAME in PASSWORDS, "tests/test_ansible.py PASSWORDS lacks the emulated Pi"

    server_run = run_playbook(deploy_source, inventory, *args, "--tags", "server")
    _report("(rpi) --tags server", server_run)
    _assert_ok(server_run)

    services, influx_url, collector = start_server_stack(server_root, ports, pi, tmp_path)
    try:
        full = run_playbook(deploy_source, inventory, *args)
        _report("(rpi) full run: aarch64 wheelhouse, exports, offline install, smoke run", full)
        _assert_ok(full)
        assert full.changed(HOSTNAME) > 0
        assert "RUNNING HANDLER [agent : Smoke run]" in full.output
        # the exports went over as archives, which were only the means of the copy: none is kept
        assert "TASK [agent : Copy those exports to the device" in full.output
        assert not list((tmp_path / "controller" / "export-archives").glob("*.tar"))

        # The lean device install: no torch, no exporters, within budget.
        r = pi.ssh("du -sm /opt/edgebench/venv | cut -f1; /opt/edgebench/venv/bin/python -c "
                   "\"import importlib.util as u; print([m for m in ('torch', 'onnx', 'librosa', 'scipy') "
                   "if u.find_spec(m)])\"")  # fmt: skip
        assert r.returncode == 0, r.stderr
        size_mib, heavy = r.stdout.split("\n")[:2]
        print(f"[rpi] device venv (aarch64, extras device-rpi): {size_mib} MiB")
        assert heavy == "[]", heavy
        assert int(size_mib) <= VENV_BUDGET_MIB

        # Whisper tiny.en, one utterance per runtime, published through the spool to the broker.
        t0 = time.monotonic()
        rc, out, err = _agent(
            pi,
            f"run --config /etc/edgebench/agent.toml --runtime {','.join(RUNTIMES)} {TRANSCRIBE} "
            "--power-source rpi-pmic --idle-seconds 1 --json",
        )
        assert rc == 0, err[-4000:]
        emulated_s = time.monotonic() - t0
        docs = {d["config"]["runtime"]: d for d in json.loads(out)}
        assert set(docs) == set(RUNTIMES)

        # The same configuration on x86 (full install, same exports, same front end): same transcript.
        ref = run_cli(
            "run", "--runtime", ",".join(RUNTIMES), *shlex.split(TRANSCRIBE), "--frontend", "numpy",
            "--no-store", "--no-publish", "--power-source", "none", "--idle-seconds", "0", "--json",
        )  # fmt: skip
        assert ref.returncode == 0, ref.stderr[-3000:]
        x86 = {d["config"]["runtime"]: d for d in json.loads(ref.stdout)}
        print(
            f"[rpi] EMULATED (qemu-user, not a Pi's speed): {len(RUNTIMES)} runtimes x 1 utterance took "
            f"{emulated_s:.0f} s"
        )
        for runtime, doc in docs.items():
            (utt,) = doc["transcribe"]["per_utterance"]
            (x86_utt,) = x86[runtime]["transcribe"]["per_utterance"]
            assert utt["id"] == x86_utt["id"] and utt["hypothesis"] == x86_utt["hypothesis"], runtime
            info = doc["sysinfo"]
            assert doc["device_class"] == "rpi" and doc["host"] == HOSTNAME and info["hostname"] == HOSTNAME
            assert info["arch"] == "aarch64" and info["device_model"] == "Raspberry Pi 5 Model B Rev 1.0"
            assert info["cpu_model"] == "Arm Cortex-A76"
            assert info["emulated"] == "qemu-user aarch64 on x86_64"
            assert any("emulated CPU" in w for w in doc["warnings"])
            # whisper.cpp's transcription computes its own log-mel from the PCM
            assert doc["config"]["frontend"] == ("whisper.cpp" if runtime == "whispercpp" else "numpy")
            energy = doc["energy"]
            assert energy["source"] == "rpi-pmic" and energy["kind"] == "estimated"
            assert energy["joules_total"] and energy["joules_total"] > 0
            print(
                f"[rpi]   {runtime:<12} '{utt['hypothesis']}' latency {utt['latency_s']:.1f} s "
                f"(EMULATED), PMIC estimate {energy['joules_total']:.1f} J (recorded rails, EMULATED)"
            )

        # ... and in InfluxDB, through TLS broker and collector, marked as emulated.
        query = "SELECT * FROM inference WHERE \"host\" = 'edge-pi5' AND \"model\" = 'whisper-tiny.en'"
        deadline = time.monotonic() + 120
        rows: list[dict] = []
        while len(rows) < len(RUNTIMES) and time.monotonic() < deadline:
            rows = _influx_rows(influx_url, "edgebench", query)
            time.sleep(0.5)
        assert {r["runtime"] for r in rows} == set(RUNTIMES), collector.log()[-3000:]
        for row in rows:
            assert row["device_class"] == "rpi" and row["fleet"] == FLEET and row["emulated"] == "true"
            assert row["precision"] == "int8" and row["energy_kind"] == "estimated"
            assert row["energy_source"] == "rpi-pmic" and row["energy_joules_total"] > 0

        # The fleet overview's table (its real query, as Grafana sends it) shows the Pi's rows as emulated.
        def influxql(q: str) -> dict:
            url = f"{influx_url}/query?" + urllib.parse.urlencode({"q": q, "db": "edgebench"})
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read())

        overview = verify_dashboard(
            fleet_overview(), influxql, time_from="now-1h", now_ms=int(time.time() * 1000)
        )
        latest = next(c for c in overview.queries if c.panel.startswith("Latest result"))
        pi_rows = [series for series in latest.data if series["tags"]["host"] == HOSTNAME]
        assert pi_rows and all(series["tags"]["emulated"] == "true" for series in pi_rows), latest.data

        again = run_playbook(deploy_source, inventory, *args)
        _report("(rpi) second full run", again)
        _assert_ok(again)
        assert again.changed() == 0, "second run changed:\n" + "\n".join(again.changed_tasks())
        _assert_no_secrets(server_run, full, again)
    finally:
        for service in reversed(services):
            service.stop()
