"""The README cannot rot: every command in it runs here, in order, as a new user would type it.

Every fenced ```bash block of README.md carries a marker comment on the line before it:

- ``<!-- readme-test: run -->`` (an explanation may follow ``run``): run with bash -e in one working
  directory shared by all blocks (``.venv`` is the checkout's, on ``PATH`` as after
  ``. .venv/bin/activate``; a fresh result store; the session's model cache), in README order; it must
  exit 0 and, for the blocks named in ``OUTCOMES``, leave what the README says it does;
- ``<!-- readme-test: options (why) -->``: not run — it needs devices, a Grafana, or runs until Ctrl-C —
  but every ``edgebench-agent`` / ``edgebench-collector`` command in it must name an existing command and
  only options that command has (``--help``), the options after ``--`` being ``run``'s;
- ``<!-- readme-test: skip (why) -->``: only ``bash tests/run.sh`` (this suite itself);
- ``<!-- readme-test: agent.toml -->`` on a ```toml block: written to the working directory as
  ``agent.toml``, pointed at the test broker (``TOML_SUBSTITUTIONS``).

A block without a marker fails the test, so a new command cannot slip in untested. The only changes
made to commands that run are ``SUBSTITUTIONS`` (the checkout's install.sh from the working directory;
the playbook checked, not run against devices that do not exist here). install.sh runs for real: on the
suite's installed ``.venv`` it only re-installs edgebench in editable mode (pip builds it in an isolated
environment, fetching setuptools from the package index, as tests/run.sh's own install does).
SLOW: ~4-6 min (the quick start's full run of Whisper tiny.en, a runtime x precision sweep, a report).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"
MARKED = re.compile(r"<!-- readme-test: (?P<marker>.*?) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.DOTALL)
SUBSTITUTIONS = {
    # the working directory is not the checkout: run the checkout's installer (it cds to its own folder)
    "./install.sh": f'"{ROOT}/install.sh"',
    # no devices here: the playbook is parsed and checked with the README's inventory and the vault it
    # encrypted (ANSIBLE_VAULT_PASSWORD_FILE answers), tests/test_ansible.py runs it for real
    "--ask-vault-pass": "--syntax-check",
}


@dataclass
class Block:
    marker: str
    lang: str
    body: str
    line: int

    @property
    def mode(self) -> str:
        return self.marker.split(" ", 1)[0]

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.marker})"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = [
        Block(m["marker"], m["lang"], m["body"], text.count("\n", 0, m.start()) + 2)
        for m in MARKED.finditer(text)
    ]
    return found


def commands(body: str) -> list[str]:
    """Logical command lines: continuation lines joined, comments and blank lines dropped."""
    joined = body.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        if tokens:
            out.append(shlex.join(tokens))
    return out


def test_every_bash_block_is_marked() -> None:
    text = README.read_text(encoding="utf-8")
    marked = [b for b in blocks() if b.lang == "bash"]
    assert len(marked) == text.count("```bash"), "a ```bash block of README.md has no readme-test marker"
    assert {b.mode for b in marked} <= {"run", "options", "skip"}
    assert [b.body for b in marked if b.mode == "skip"] == ["bash tests/run.sh"]
    assert all(re.match(r"(options|skip) \(.+\)$", b.marker) for b in marked if b.mode != "run")
    assert [b for b in blocks() if b.lang == "toml" and b.marker == "agent.toml"]


def _help(program: str, words: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(
        [str(VENV_BIN / program), *words, "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, f"`{program} {' '.join(words)}` is not a command: {r.stderr[-500:]}"
    return r.stdout


def _unknown_options(tokens: list[str], help_text: str) -> list[str]:
    options = [t.split("=", 1)[0] for t in tokens if t.startswith("--") and t != "--"]
    return [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", help_text)]


def test_options_blocks_name_real_commands_and_options() -> None:
    """Commands the tests cannot run here still name existing (sub)commands and options."""
    env = {**os.environ, "COLUMNS": "250", "TERM": "dumb"}
    checked = 0
    for block in (b for b in blocks() if b.mode == "options"):
        for command in commands(block.body):
            tokens = shlex.split(command)
            if tokens[0] not in ("edgebench-agent", "edgebench-collector"):
                continue
            own, passthrough = tokens[1:], []
            if "--" in own:
                i = own.index("--")
                own, passthrough = own[:i], own[i + 1 :]
            words = [t for t in own[: next((i for i, t in enumerate(own) if t.startswith("-")), len(own))]]
            unknown = _unknown_options(own, _help(tokens[0], words, env))
            if passthrough:
                unknown += _unknown_options(passthrough, _help("edgebench-agent", ["run"], env))
            assert not unknown, f"{block}: `{command}`: no such option(s) {unknown}"
            checked += 1
    assert checked >= 8


OUTCOMES = {
    # a substring of a run block -> what must hold afterwards (work dir, its stdout)
    # the table step 2 of the README explains, column by column
    "edgebench-agent run --model whisper-tiny.en\n": lambda work, out: all(
        s in out
        for s in (
            "setup",
            "latency ms",
            "p50/p90",
            "throughput",
            "RTF",
            "WER/CER",
            "MiB",
            "forward",
            "32 tok",
        )
    ),
    "report --out report/": lambda work, out: (work / "report" / "index.html").is_file(),
    "compare --baseline runtime=torch": lambda work, out: "onnxruntime" in out and "int8" in out,
    "ansible-vault encrypt": lambda work, out: (
        (work / "ansible" / "group_vars" / "all" / "vault.yml").read_text().startswith("$ANSIBLE_VAULT")
    ),
    "results export --format csv -o results.csv": lambda work, out: (
        (work / "results.csv").read_text().count("\n") >= 4
    ),
}


def _agent_toml(block: Block, mosquitto, directory: Path) -> str:  # type: ignore[no-untyped-def]
    """The README's agent.toml pointed at the test broker (its TLS port, CA and host1's password)."""
    password = directory / "mqtt.pass"
    password.write_text(mosquitto.users["host1"])
    text = block.body
    for old, new in (
        ('"broker.example"', '"127.0.0.1"'),
        ("port = 8883", f"port = {mosquitto.tls_port}"),
        ('"/etc/edgebench/ca.pem"', f'"{mosquitto.ca_file}"'),
        ('"/etc/edgebench/mqtt.pass"', f'"{password}"'),
    ):
        assert old in text, f"{block}: the README's agent.toml no longer has {old}"
        text = text.replace(old, new)
    return text


def test_readme_commands_run(tmp_path: Path, mosquitto, influxdb, collectors) -> None:  # type: ignore[no-untyped-def]
    """Every run block, in README order, in one working directory; results streamed in the README's
    step 4 arrive in InfluxDB through the broker and a real collector."""
    from tests.conftest import MQTT_FLEET
    from tests.test_collector import start_collector

    assert MQTT_FLEET == "lab"  # the README's agent.toml names fleet "lab" and device host1
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    shutil.copytree(ROOT / "ansible", work / "ansible", ignore=shutil.ignore_patterns("inventory.ini", "all"))
    vault_password = tmp_path / "vault-password"
    vault_password.write_text(uuid.uuid4().hex)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "EDGEBENCH_DATA_DIR": str(tmp_path / "data"),  # a new user's empty store
        "ANSIBLE_VAULT_PASSWORD_FILE": str(vault_password),
        "COLUMNS": "100",
    }
    _collector, db = start_collector(collectors, tmp_path / "collector", mosquitto, influxdb)
    ran = []
    for block in blocks():
        if block.marker == "agent.toml":
            (work / "agent.toml").write_text(_agent_toml(block, mosquitto, tmp_path))
            continue
        if block.mode != "run":
            continue
        script = block.body
        for old, new in SUBSTITUTIONS.items():
            script = script.replace(old, new)
        started = time.monotonic()
        r = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        ran.append(f"{block}: {time.monotonic() - started:.0f} s")
        assert r.returncode == 0, (
            f"{block} failed ({r.returncode}):\n{script}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        )
        for needle, holds in OUTCOMES.items():
            if needle in block.body + "\n":
                assert holds(work, r.stdout), (
                    f"{block}: not what the README says ({needle!r}):\n{r.stdout[-3000:]}"
                )
    assert len(ran) >= 8, ran
    # step 4: the streamed run's result is in InfluxDB (the collector confirmed it: `publish` exited 0)
    rows = influxdb.points('SELECT count("seq") FROM "inference" WHERE "host" = \'host1\'', db)
    assert rows and rows[0]["count"] == 1, rows
    print("\n" + "\n".join(ran))


@pytest.mark.parametrize("old", list(SUBSTITUTIONS))
def test_substitutions_still_apply(old: str) -> None:
    """A substitution that no longer matches the README would silently change what runs."""
    assert any(old in b.body for b in blocks() if b.mode == "run"), old
