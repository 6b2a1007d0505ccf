"""Helpers for running the real Ansible deployment in tests (tests/test_ansible.py).

- :func:`snapshot_source`: a private copy of the checkout to deploy from. Other work in the same tree
  (editors, concurrent builds) must not change the wheel between the runs a test compares for
  idempotence, and deploying from a copy also proves the playbook does not depend on its location.
- :func:`run_playbook` and :func:`parse_recap`: ``ansible-playbook`` as a subprocess, with the PLAY
  RECAP parsed per host (ok/changed/failed/...), its run time, and the output kept for assertions.
- :func:`vault_file`: real Ansible Vault encryption of the test's secrets.
- :class:`NetnsDevice`: an SSH "device" inside a network namespace (``ip netns``, a veth pair with
  private addresses, ``sshd`` started inside it with a generated host key and an authorized key). Its
  only route is the veth link to this machine: no package index is reachable from it.
- :func:`unit_command`: the command and environment a systemd unit would run (ExecStart=,
  Environment=, LoadCredential= with ``%d``), so that a test can start a deployed service exactly as
  its unit says, without systemd as PID 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import _die_with_parent, port_open

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ANSIBLE_VAULT = Path(sys.executable).with_name("ansible-vault")
ANSIBLE_LINT = Path(sys.executable).with_name("ansible-lint")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

# What the playbook needs from the checkout: the package sources (wheel), deploy/ and ansible/.
SNAPSHOT_FILES = ("pyproject.toml", "setup.py", "README.md")
SNAPSHOT_DIRS = ("agent", "models", "collector", "deploy", "ansible")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "inventory.ini")


def snapshot_source(dest: Path) -> Path:
    """Copy the parts of the checkout the deployment uses into ``dest`` (returned)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SNAPSHOT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    for name in SNAPSHOT_DIRS:
        shutil.copytree(ROOT / name, dest / name, ignore=_IGNORE, symlinks=True)
    return dest


# ------------------------------------------------------------------------------------------------
# ansible-playbook
# ------------------------------------------------------------------------------------------------

_RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """host -> {ok, changed, unreachable, failed, skipped, rescued, ignored} from the PLAY RECAP."""
    _, sep, tail = output.rpartition("PLAY RECAP")
    if not sep:
        raise AssertionError(f"no PLAY RECAP in ansible-playbook output:\n{output[-3000:]}")
    recap: dict[str, dict[str, int]] = {}
    for line in tail.splitlines()[1:]:
        m = _RECAP_LINE.match(line.strip())
        if m:
            recap[m.group(1)] = {k: int(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
    return recap


@dataclass
class PlaybookRun:
    argv: list[str]
    returncode: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    # (seconds, host, task) of every task that ran, from tests/ansible_callbacks/task_times.py
    task_times: list[tuple[float, str, str]] = field(default_factory=list)

    def changed(self, host: str | None = None) -> int:
        """Changed tasks of one host, or of all hosts."""
        hosts = [host] if host else list(self.recap)
        return sum(self.recap[h]["changed"] for h in hosts)

    def changed_tasks(self) -> list[str]:
        """The 'changed:' lines with the task header above each (for assertion messages)."""
        out, task = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.split("]")[0] + "]"
            elif line.startswith("changed:"):
                out.append(f"{task} {line[:160]}")
        return out

    def summary(self, slowest: int = 6) -> str:
        """Run time, changed tasks per host, and the slowest tasks (where a slow test's minutes went)."""
        head = f"{self.seconds:.0f} s, changed={ {h: r['changed'] for h, r in self.recap.items()} }"
        slow = sorted(self.task_times, reverse=True)[:slowest]
        return head + "".join(f"\n    {s:7.1f} s  {host}: {task}" for s, host, task in slow)


def run_playbook(
    source: Path,
    inventory: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 3000,
) -> PlaybookRun:
    """``ansible-playbook deploy.yml -i inventory extra...`` from ``source``/ansible (its ansible.cfg)."""
    argv = [str(ANSIBLE_PLAYBOOK), "deploy.yml", "-i", str(inventory), *extra]
    times_fd, times_file = tempfile.mkstemp(prefix="task-times-", suffix=".jsonl")
    os.close(times_fd)
    # One ssh connection per host for the whole run (an emulated Pi's sshd takes ~0.5 s per handshake),
    # its master closed below: none may outlive the run.
    sockets = tempfile.mkdtemp(prefix="eb-ssh-")
    full_env = {
        **os.environ,
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=120s -o ControlPath={sockets}/%C",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).with_name("ansible_callbacks")),
        "ANSIBLE_CALLBACKS_ENABLED": "task_times",
        "EDGEBENCH_TASK_TIMES": times_file,
        **(env or {}),
    }
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            argv, cwd=source / "ansible", env=full_env, capture_output=True, text=True, timeout=timeout
        )
        lines = Path(times_file).read_text().splitlines()
    finally:
        os.unlink(times_file)
        for sock in Path(sockets).iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "any"], capture_output=True)
        shutil.rmtree(sockets, ignore_errors=True)
    run = PlaybookRun(argv, r.returncode, r.stdout + r.stderr, time.monotonic() - t0)
    for line in lines:
        t = json.loads(line)
        run.task_times.append((t["seconds"], t["host"], t["task"]))
    if "PLAY RECAP" in run.output:
        run.recap = parse_recap(run.output)
    return run


def vault_file(path: Path, yaml_text: str, password_file: Path) -> Path:
    """Write ``yaml_text`` to ``path`` encrypted with Ansible Vault (password in ``password_file``)."""
    path.write_text(yaml_text)
    r = subprocess.run(
        [str(ANSIBLE_VAULT), "encrypt", "--vault-password-file", str(password_file), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if r.returncode != 0:
        raise RuntimeError(f"ansible-vault encrypt failed: {r.stderr or r.stdout}")
    assert path.read_text().startswith("$ANSIBLE_VAULT;"), "vault file is not encrypted"
    return path


# ------------------------------------------------------------------------------------------------
# A device in a network namespace, reachable over SSH
# ------------------------------------------------------------------------------------------------


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        why = r.stderr.strip() or r.stdout.strip()
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {why}")
    return r


class NetnsDevice:
    """sshd inside a fresh network namespace, linked to this machine by one veth pair.

    The host side gets ``host_ip``, the namespace ``device_ip`` (a /30 of their own): the device can
    reach services this machine listens on at ``host_ip`` (the broker's TLS listener) and nothing
    else — no default route, no DNS, hence no package index. Root only (``ip netns``).
    """

    def __init__(self, base_dir: Path, tag: str | None = None) -> None:
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        tag = tag or f"{os.getpid() % 100000}"
        self.ns = f"ebdev{tag}"
        self.veth_host, self.veth_dev = f"ebh{tag}"[:15], f"ebd{tag}"[:15]
        octet = 16 + os.getpid() % 200  # 10.213.X.0/30: unlikely to collide with anything routed here
        self.host_ip, self.device_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"
        self.key = self.dir / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.log_file = self.dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _link(self) -> None:
        """The namespace and its veth link to this machine (no other route)."""
        _sh("ip", "netns", "add", self.ns)
        _sh("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_dev)
        _sh("ip", "link", "set", self.veth_dev, "netns", self.ns)
        _sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth_host)
        _sh("ip", "link", "set", self.veth_host, "up")
        for cmd in (
            ("ip", "addr", "add", f"{self.device_ip}/30", "dev", self.veth_dev),
            ("ip", "link", "set", self.veth_dev, "up"),
            ("ip", "link", "set", "lo", "up"),
        ):
            self.exec(*cmd)

    def start(self, timeout: float = 15.0) -> NetnsDevice:
        self._link()
        host_key = self.dir / "ssh_host_ed25519_key"
        for key in (host_key, self.key):
            if not key.exists():
                _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebench-test", "-f", str(key))
        (self.dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        self.known_hosts.write_text(f"{self.device_ip} {host_key.with_suffix('.pub').read_text()}")
        conf = self.dir / "sshd_config"
        conf.write_text(
            f"ListenAddress {self.device_ip}\nPort 22\nHostKey {host_key}\nPidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "Subsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self._start_sshd(["ip", "netns", "exec", self.ns, SSHD, "-D", "-e", "-f", str(conf)], timeout)
        return self

    def _start_sshd(self, argv: list[str], timeout: float) -> None:
        """Start ``argv`` (sshd, in the namespace) and wait until the device's port 22 answers."""
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not port_open(22, self.device_ip):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start in {self.ns}: {self.log_file.read_text()[-3000:]}")
            time.sleep(0.1)

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (not over SSH)."""
        return _sh("ip", "netns", "exec", self.ns, *argv, check=check)

    def ssh(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a shell command on the device over SSH, as Ansible reaches it."""
        return subprocess.run(
            ["ssh", *self.ssh_options(), f"root@{self.device_ip}", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ]

    def inventory_vars(self) -> str:
        """Host variables for an INI inventory line."""
        return (
            f"ansible_host={self.device_ip} ansible_user=root ansible_ssh_private_key_file={self.key} "
            f"ansible_ssh_common_args='-o UserKnownHostsFile={self.known_hosts} "
            "-o StrictHostKeyChecking=yes' "
            "ansible_python_interpreter=/usr/bin/python3"
        )

    def stop(self) -> None:
        """Stop sshd and every process left in the namespace (our SSH sessions), remove the links."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pids = _sh("ip", "netns", "pids", self.ns, check=False).stdout.split()
        for pid in pids:  # only processes inside the namespace this object created
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _sh("ip", "link", "del", self.veth_host, check=False)
        _sh("ip", "netns", "del", self.ns, check=False)


# ------------------------------------------------------------------------------------------------
# Starting a deployed service the way its systemd unit would
# ------------------------------------------------------------------------------------------------


def unit_command(unit_file: Path, credentials_dir: Path) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) of a unit's ExecStart=, with Environment= and LoadCredential= applied:
    credentials are copied into ``credentials_dir``, which stands for ``%d``."""
    env: dict[str, str] = {}
    exec_start: list[str] = []
    credentials_dir.mkdir(parents=True, exist_ok=True)
    for raw in unit_file.read_text().splitlines():
        key, sep, value = raw.strip().partition("=")
        if not sep or raw.lstrip().startswith("#"):
            continue
        value = value.replace("%d", str(credentials_dir))
        if key == "Environment":
            for assignment in shlex.split(value):
                k, _, v = assignment.partition("=")
                env[k] = v
        elif key == "LoadCredential":
            name, _, source = value.partition(":")
            shutil.copy2(source, credentials_dir / name)
        elif key == "ExecStart":
            exec_start = shlex.split(value.lstrip("-@+!"))
    if not exec_start:
        raise ValueError(f"{unit_file} has no ExecStart=")
    return exec_start, env


class Service:
    """A long-running process a test starts (as systemd would), stopped with SIGTERM at teardown."""

    def __init__(self, name: str, argv: list[str], log_file: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.log_file = name, argv, log_file
        with log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                preexec_fn=_die_with_parent,
            )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def wait_for(self, predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
        """Poll ``predicate()`` until true; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} within {timeout} s: {self.log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
