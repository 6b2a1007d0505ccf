"""Test-wide isolation: results, caches and the HF hub never touch the user's real directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent


# tests/run.sh (what CI runs) installs every prerequisite, so there a missing one is a failure, never a
# silent skip. On a developer's machine without root or the converter environment, those tests skip.
REQUIRE_ALL = os.environ.get("EDGEBENCH_TESTS_REQUIRE_ALL") == "1"


def needs(ok: bool, reason: str) -> pytest.MarkDecorator:
    """A skip mark for a missing prerequisite, inert under tests/run.sh (the test then runs and fails)."""
    return pytest.mark.skipif(not ok and not REQUIRE_ALL, reason=reason)


def import_or_fail(module: str, reason: str | None = None) -> Any:
    """``pytest.importorskip`` that fails under tests/run.sh: there every package is installed, and a
    test skipped for a missing one would prove nothing in CI."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        skip_or_fail(reason or f"{module} is not installed")


def write_executable(path: Path, text: str) -> Path:
    """A script the code under test will execute, written by a separate ``install`` process.

    Written here, the file's descriptor could be inherited by a child that another thread of this process
    forks at that moment (leftover samplers of earlier tests run tools); until that child execs, Linux
    refuses to run the file ("Text file busy", seen on CI). The draft this process writes is never run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(path.name + ".draft")
    draft.write_text(text)
    subprocess.run(["install", "-m", "0755", str(draft), str(path)], check=True)
    draft.unlink()
    return path


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; fail under tests/run.sh, which is meant to provide everything."""
    if REQUIRE_ALL:
        pytest.fail(f"prerequisite missing under tests/run.sh: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)  # also from a module's top level (import_or_fail)


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.persistent_cache import model_cache_dir

    base = tmp_path_factory.mktemp("edgebench-home")
    os.environ["EDGEBENCH_DATA_DIR"] = str(base / "data")
    # exports and converted weights outlive the session, keyed by their sources (tests/persistent_cache.py)
    os.environ["EDGEBENCH_CACHE_DIR"] = str(model_cache_dir() or base / "cache")
    os.environ["HF_HUB_OFFLINE"] = "1"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run the real ``edgebench-agent`` entry point in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-c", "from edgebench.agent.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised GPT-2 saved with ``save_pretrained`` (no tokenizer): an ``hf:`` causal
    LM that needs no download. Vocabulary 1000, 64 positions, end-of-sequence id 0."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_embd=64, n_head=2, vocab_size=1000, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------
# Real servers on loopback ports (tests/servers.py). A server that does not start fails the test
# with its log tail — never a skip: CI installs mosquitto, influxdb and victoria-metrics (run.sh).
# tests.servers is imported inside the fixtures so that collecting the other tests never depends on it.
# ------------------------------------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.servers import Certs, InfluxDB1, Mosquitto, MqttProbe, VictoriaMetrics, _Process

# Broker users: the collector and two devices of fleet "lab". Device username = host name (make_acl.py).
MQTT_FLEET = "lab"
MQTT_USERS = {
    "collector": "collector-pw",
    "controller": "controller-pw",
    "host1": "host1-pw",
    "host2": "host2-pw",
}
MQTT_DEVICES = [(MQTT_FLEET, "host1"), (MQTT_FLEET, "host2")]

_S = TypeVar("_S", bound="_Process")


def _started(server: _S) -> _S:
    """Start a server or fail the test with its log (ServerError carries the tail)."""
    from tests.servers import ServerError

    try:
        server.start()
    except (ServerError, OSError) as e:
        server.kill()
        pytest.fail(f"{type(server).__name__} did not start: {e}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def mqtt_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """One CA + server certificate (SAN 127.0.0.1, localhost) + client cert ``host1`` per session."""
    from tests.servers import ServerError, make_certs

    try:
        return make_certs(tmp_path_factory.mktemp("mqtt-certs"), clients=("host1",))
    except ServerError as e:
        pytest.fail(str(e), pytrace=False)


def _mosquitto(base: Path, certs: Certs) -> Mosquitto:
    from tests.servers import Mosquitto

    return Mosquitto(base, MQTT_USERS, MQTT_DEVICES, certs=certs)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory, mqtt_certs: Certs) -> Iterator[Mosquitto]:
    """Session broker (production config): users collector/host1/host2, ACL for lab/host1, lab/host2.
    Shared by many tests: never stop it in a test (use ``mosquitto_fresh``), use unique client ids."""
    broker = _started(_mosquitto(tmp_path_factory.mktemp("mosquitto"), mqtt_certs))
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_fresh(tmp_path: Path, mqtt_certs: Certs) -> Iterator[Mosquitto]:
    """A broker of its own for fault tests: stop()/kill()/start() keep ports and persistence."""
    broker = _started(_mosquitto(tmp_path / "mosquitto", mqtt_certs))
    yield broker
    broker.stop()


@pytest.fixture
def mqtt_probe() -> Iterator[Callable[..., MqttProbe]]:
    """Factory for connected test clients, closed at teardown:
    ``mqtt_probe(broker, "collector", password=None, *, connect=True, tls=False, client_id="",
    clean_start=True, session_expiry=None, manual_ack=False)`` — the password defaults to the
    broker's ``users[username]``; with connect=True a refused CONNACK fails the test."""
    from tests.servers import MqttProbe

    probes: list[MqttProbe] = []

    def make(
        broker: Mosquitto,
        username: str | None,
        password: str | None = None,
        *,
        connect: bool = True,
        **kw: Any,
    ) -> MqttProbe:
        probe = MqttProbe(broker, username, password, **kw)
        probes.append(probe)
        if connect:
            rc = probe.connect()
            assert rc is not None and not rc.is_failure, f"{username} could not connect: {rc}"
        return probe

    yield make
    for p in probes:
        p.close()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """Session InfluxDB 1.x (no auth). Use ``influxdb.new_database()`` for a database of your own."""
    from tests.servers import InfluxDB1

    server = _started(InfluxDB1(tmp_path_factory.mktemp("influxdb")))
    yield server
    server.stop()


@pytest.fixture
def influxdb_fresh(tmp_path: Path) -> Iterator[InfluxDB1]:
    """An InfluxDB 1.x of its own for fault tests (stop()/start() keep port and data)."""
    from tests.servers import InfluxDB1

    server = _started(InfluxDB1(tmp_path / "influxdb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """Session VictoriaMetrics: the real target for influxdb-client's v2 write API (/api/v2/write)."""
    from tests.servers import VictoriaMetrics

    server = _started(VictoriaMetrics(tmp_path_factory.mktemp("victoria")))
    yield server
    server.stop()


@pytest.fixture
def victoria_fresh(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics of its own for fault tests."""
    from tests.servers import VictoriaMetrics

    server = _started(VictoriaMetrics(tmp_path / "victoria"))
    yield server
    server.stop()


@pytest.fixture
def collectors():  # type: ignore[no-untyped-def]
    """Collector subprocesses a test started (see tests/test_collector.py); stopped after it."""
    procs: list = []
    yield procs
    for p in procs:
        if p.alive():
            p.terminate()


# ------------------------------------------------------------------------------------------------
# compare / report (tests/test_compare.py, tests/test_report.py): real runs in a store of their own,
# shared by both modules. Slow (> 20 s): a 32-point lstm-ctc:tiny sweep, whisper-tiny.en transcription
# of 1 clip in fp32 and int8, and a small second sweep exported and relabelled as host "pi5".
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``{"env", "sweep", "whisper", "pi5_json"}``: pass ``env`` to run_cli to use the
    store; sweep/whisper are run ids; pi5_json is an exported results file of the second 'host'."""
    import json

    import soundfile as sf

    from edgebench.agent.datasets.loader import load_dataset

    base = tmp_path_factory.mktemp("report-runs")
    env = {"EDGEBENCH_DATA_DIR": str(base / "store")}
    fast = ["--min-iterations", "2", "--min-duration", "0", "--warmup", "1", "--no-publish", "--json"]
    # no energy (not what these tests are about); 1 thread and beam 1 keep the runs cheap on shared cores
    fast += ["--power-source", "none", "--threads", "1", "--beam-size", "1"]

    def run(*args: str, store_env: dict[str, str]) -> list[dict]:
        proc = run_cli("run", *args, *fast, env=store_env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    clips = {n: base / f"clips{n}" for n in (1, 2)}
    for n, folder in clips.items():
        folder.mkdir()
        for i, utt in enumerate(load_dataset("builtin")[:n]):
            sf.write(folder / f"u{i}.wav", utt.audio, 16000)
            (folder / f"u{i}.txt").write_text(utt.text)
    sweep = run(
        "--model", "lstm-ctc:tiny", "--precision", "fp32,int8", "--batch-size", "1,2",
        "--audio-seconds", "1,2", "--new-tokens", "2,4", "--ctc-weight", "0,1",
        "--dataset", str(clips[2]), store_env=env,
    )  # fmt: skip
    whisper = run(
        "--model", "whisper-tiny.en", "--scenario", "transcribe", "--precision", "fp32,int8",
        "--dataset", str(clips[1]), store_env=env,
    )  # fmt: skip
    pi5 = run(
        "--model", "lstm-ctc:tiny", "--scenario", "forward,generate", "--batch-size", "1",
        "--audio-seconds", "1,2", "--new-tokens", "2,4",
        store_env={"EDGEBENCH_DATA_DIR": str(base / "pi5-store")},
    )  # fmt: skip
    for doc in pi5:  # what `results export --format json` on the Pi would give
        doc["host"] = doc["sysinfo"]["hostname"] = "pi5"
    pi5_json = base / "pi5.json"
    pi5_json.write_text(json.dumps(pi5, indent=2))
    return {
        "env": env,
        "sweep": sweep[0]["run_id"],
        "whisper": whisper[0]["run_id"],
        "pi5_json": pi5_json,
    }
