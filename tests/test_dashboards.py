"""The Grafana dashboards: structure of the JSON, and every panel query run against real data.

No Grafana server can run here, so the live test does what Grafana's InfluxDB data source does
(collector/grafana/interpolate.py): run each variable's query, substitute the values it returned (regex
format, "All", $timeFilter, $__interval) and send every panel query to a real InfluxDB 1.6.7 that the real
collector filled from real agent runs (two hosts over TLS MQTT, torch fp32 + int8, a trained Whisper for
WER, a replayed power trace, a fake sysfs for temperatures, a dead letter, retained agent status).
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgebench.collector.grafana import interpolate as gi
from edgebench.collector.grafana.alerts import evaluate, provisioning, rules
from edgebench.collector.grafana.cli import render
from edgebench.collector.grafana.dashboards import build_all
from edgebench.collector.grafana.panels import DATASOURCE, DATASOURCE_UID
from edgebench.collector.grafana.push import FOLDER_TITLE, FOLDER_UID, datasource_body
from edgebench.collector.grafana.verify import (
    check_ratio,
    check_series,
    group_tags,
    query_count,
    select_columns,
    verify_dashboard,
)
from tests.conftest import MQTT_FLEET, ROOT, run_cli

GRAFANA = ROOT / "deploy" / "grafana"
BUILTINS = {"timeFilter", "__interval", "interval", "__interval_ms"}
DASHBOARDS = build_all()


def panels_of(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def variables_of(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dash["templating"]["list"]}


# ------------------------------------------------------------------------------------------ structure
def test_committed_json_is_generated_from_code() -> None:
    files = sorted(p.name for p in (GRAFANA / "dashboards").glob("*.json"))
    assert files == sorted(f"{stem}.json" for stem in DASHBOARDS)
    for stem, dash in DASHBOARDS.items():
        assert (GRAFANA / "dashboards" / f"{stem}.json").read_text() == render(dash), (
            f"{stem}.json is stale: run `edgebench-collector grafana build`"
        )


def test_build_check_flags_a_stale_file(tmp_path: Path) -> None:
    from tests.test_grafana_push import collector_cli

    out = ("--out", str(tmp_path), "--alerts", str(tmp_path / "alerts.yaml"))
    r = collector_cli("grafana", "build", *out)
    assert r.returncode == 0 and "8 written" in r.stdout, r.stderr
    assert (tmp_path / "alerts.yaml").read_text() == (
        GRAFANA / "provisioning" / "alerting" / ALERTS
    ).read_text()
    (tmp_path / "trends.json").write_text("{}")
    r = collector_cli("grafana", "build", *out, "--check")
    assert r.returncode != 0 and "trends.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "trends.json").read_text() == "{}"  # --check writes nothing


@pytest.mark.parametrize("stem", list(DASHBOARDS))
def test_dashboard_structure(stem: str) -> None:
    dash = DASHBOARDS[stem]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids {ids}"
    variables = variables_of(dash)
    assert len(variables) == len(dash["templating"]["list"]), "duplicate variable names"
    used_by_panels: set[str] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["rawQuery"] is True
            names = gi.variable_names(t["query"]) | gi.variable_names(
                t.get("alias", "").replace("$tag_", "#")
            )
            unknown = names - set(variables) - BUILTINS
            assert not unknown, f"{p['title']}: undefined variable(s) {unknown}"
            used_by_panels |= names
    unused = set(variables) - used_by_panels
    assert not unused, f"variables defined but used by no panel: {unused}"
    seen: list[str] = []
    for name, v in variables.items():
        assert v["datasource"] == DATASOURCE
        refs = gi.variable_names(v["query"]) - BUILTINS
        assert refs <= set(seen), f"variable {name} uses {refs - set(seen)} defined after it"
        seen.append(name)
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(uids) == len(set(uids)) and all(len(u) <= 40 for u in uids)


def test_provisioning_files_match_push() -> None:
    ds_file = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "edgebench-influxdb.yaml").read_text()
    )
    (ds,) = ds_file["datasources"]
    body = datasource_body("http://influx:8086", "edgebench", username="u", password="p")
    for key in ("name", "uid", "type", "access"):
        assert ds[key] == body[key], key
    assert ds["uid"] == DATASOURCE_UID
    assert ds["jsonData"]["version"] == body["jsonData"]["version"] == "InfluxQL"
    assert set(ds["jsonData"]) == set(body["jsonData"])
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "edgebench.yaml").read_text())[
        "providers"
    ]
    assert provider["folderUid"] == FOLDER_UID and provider["type"] == "file"


ALERTS = "edgebench-alerts.yaml"


def test_alert_rules_file_is_generated_and_well_formed() -> None:
    """The committed rules are the code's; each is query A -> reduce B -> threshold C on the provisioned
    data source, in the dashboards' folder, linked to an existing dashboard."""
    text = (GRAFANA / "provisioning" / "alerting" / ALERTS).read_text()
    assert text.endswith(render(provisioning()))
    (group,) = yaml.safe_load(text)["groups"]
    assert group["folder"] == "edgebench alerts" != FOLDER_TITLE  # a title (not a uid), not the dashboards'
    panels = {d["uid"]: {p["id"]: p["title"] for p in d["panels"]} for d in DASHBOARDS.values()}
    for rule in group["rules"]:
        a, b, c = rule["data"]
        assert rule["condition"] == c["refId"] == "C"
        assert a["datasourceUid"] == DATASOURCE_UID and "$timeFilter" in a["model"]["query"]
        assert b["model"]["expression"] == "A" and c["model"]["expression"] == "B"
        assert {b["datasourceUid"], c["datasourceUid"]} == {"__expr__"}
        link = rule["annotations"]  # Grafana refuses one of the two without the other
        assert int(link["__panelId__"]) in panels[link["__dashboardUid__"]], rule["title"]
    assert [r["title"] for r in group["rules"]] == [
        "Agent offline",
        "Transcription slower than real time",
        "Campaign regression",
    ]


def test_alert_rules_fire_on_what_they_describe(influxdb) -> None:  # type: ignore[no-untyped-def]
    """Each rule evaluated (Grafana's query -> last value -> threshold) against a real InfluxDB holding
    both sides of its threshold: it fires for exactly the series it describes."""
    db = influxdb.new_database("alerts")
    t = time.time_ns() - 60 * 10**9
    cfg = "model=whisper-tiny.en,precision=int8,runtime=onnxruntime,scenario=transcribe"
    lines = [
        f'agent_status,fleet=lab,host=pi1 online=0i,state="offline" {t}',
        f'agent_status,fleet=lab,host=pi2 online=1i,state="online" {t}',
        f'agent_status,fleet=lab,host=pi3 online=0i,state="offline" {t}',  # back online since
        f'agent_status,fleet=lab,host=pi3 online=1i,state="online" {t + 10**9}',
        f"inference,host=pi1,{cfg} rtf=1.4 {t}",  # too slow
        f"inference,host=pi2,{cfg} rtf=0.5 {t}",
        f"inference,host=pi3,{cfg} rtf=1.3 {t}",  # too slow once, fast in its latest result
        f"inference,host=pi3,{cfg} rtf=0.9 {t + 10**9}",
        f"inference,emulated=true,host=qemu-pi,{cfg} rtf=9 {t}",  # emulated: never alerts
        f"inference,host=pi1,model=whisper-tiny.en,precision=int8,runtime=onnxruntime,scenario=forward "
        f"latency_p50_s=2.0 {t}",  # no RTF: no series
        f'campaign_regression,baseline=n0,campaign=n1,host=pi1,{cfg} ratio=1.3,verdict="regression" {t}',
        f'campaign_regression,baseline=n0,campaign=n1,host=pi2,{cfg} ratio=1.01,verdict="unchanged" {t}',
        f'campaign_regression,baseline=n0,campaign=n1,host=pi3,{cfg} ratio=0.7,verdict="improvement" {t}',
    ]
    status, body = influxdb.write(db, "\n".join(lines))
    assert status == 204, body
    firing = {}
    for rule in rules():
        instances = evaluate(rule, lambda q: influxdb.query(q, db))
        firing[rule.uid] = sorted(i.labels["host"] for i in instances if i.firing)
    assert firing == {
        "edgebench-agent-offline": ["pi1"],
        "edgebench-rtf-above-1": ["pi1"],
        "edgebench-campaign-regression": ["pi1"],
    }


# ------------------------------------------------------------------------------------------ interpolation
def test_interpolation_follows_grafana() -> None:
    var = {"name": "model", "multi": True, "includeAll": True, "allValue": ".*"}
    assert gi.format_values(["whisper-tiny.en"], var) == r"whisper-tiny\.en"
    assert gi.format_values(["a.b", "c/d", "e(f)"], var) == r"(a\.b|c\/d|e\(f\))"
    assert gi.format_values([gi.ALL], var) == ".*"
    no_all = {**var, "allValue": None, "options": [{"value": gi.ALL}, {"value": "x"}, {"value": "y"}]}
    assert gi.format_values([gi.ALL], no_all) == "(x|y)"
    assert gi.time_filter("now-7d") == "time >= now() - 7d and time <= now()"
    assert gi.time_filter(1_700_000_000_000, 1_700_003_600_000) == (
        "time >= 1700000000000ms and time <= 1700003600000ms"
    )
    q = 'SELECT mean("x") FROM "m" WHERE "host" =~ /^($host)$/ AND $timeFilter GROUP BY time($__interval)'
    out = gi.interpolate(
        q, {"host": var}, {"host": ["h1", "h2"]}, time_from="now-1h", now_ms=10**12, max_data_points=1000
    )
    assert out == (
        'SELECT mean("x") FROM "m" WHERE "host" =~ /^((h1|h2))$/ AND time >= now() - 1h and time <= now() '
        "GROUP BY time(5s)"
    )
    assert (
        gi.interpolate("$host_a ${host} [[host]] $unknown", {"host": var}, {"host": "h"})
        == "$host_a h h $unknown"
    )
    assert gi.format_interval(gi.interval_ms(30 * 86_400_000)) == "30m"  # 43.2 min -> 30m


def test_escaped_values_match_exactly_in_influxdb(influxdb) -> None:  # type: ignore[no-untyped-def]
    """The regex a dotted / slashed value becomes matches that tag value only, in a real InfluxDB."""
    db = influxdb.new_database("grafana_escape")
    lines = "\n".join(
        f"inference,model={m},host=h latency_p50_s={i}.0 {1_700_000_000_000_000_000 + i}"
        for i, m in enumerate(["whisper-tiny.en", "whisper-tinyXen", "a/b", "a-b"])
    )
    status, body = influxdb.write(db, lines)
    assert status == 204, body
    var = {"name": "model", "multi": True, "includeAll": True, "allValue": ".*"}
    for chosen, expected in (
        (["whisper-tiny.en"], {"whisper-tiny.en"}),
        (["a/b", "whisper-tiny.en"], {"a/b", "whisper-tiny.en"}),
    ):
        q = gi.interpolate(
            'SELECT "latency_p50_s" FROM "inference" WHERE "model" =~ /^($model)$/ GROUP BY "model"',
            {"model": var},
            {"model": chosen},
        )
        got = {s["tags"]["model"] for s in influxdb.query(q, db)["results"][0].get("series", [])}
        assert got == expected, q


def test_verifier_parses_queries_and_catches_bad_answers() -> None:
    q = (
        'SELECT count("online") - sum("online") AS "offline", mean("x"), "watts" FROM (SELECT last("online") '
        'AS "online" FROM "agent_status" GROUP BY "host") WHERE $timeFilter '
        'GROUP BY time(1m), "reason" fill(none)'
    )
    assert select_columns(q) == ["offline", "mean", "watts"]
    assert group_tags(q) == ["reason"]
    good = [
        {
            "tags": {"reason": "r"},
            "columns": ["time", "offline", "mean", "watts"],
            "values": [[0, 1, None, 2.5]],
        }
    ]
    assert check_series(q, good) == ["column mean is null everywhere"]
    assert check_series(q, []) == ["no data"]
    bad = [{"columns": ["time", "offline"], "values": [[0, 1]]}]
    assert check_series(q, bad) == [
        "columns ['time', 'offline'] != ['time', 'offline', 'mean', 'watts']",
        "series lacks GROUP BY tag(s) ['reason']",
        "column mean is null everywhere",
        "column watts is null everywhere",
    ]
    compare = DASHBOARDS["compare"]["panels"][0]
    ta, tb = compare["targets"]
    a = [
        {"tags": {"model": "m", "scenario": "forward"}, "columns": ["time", "a_p50_s"], "values": [[0, 2.0]]}
    ]
    b = [
        {"tags": {"model": "m", "scenario": "generate"}, "columns": ["time", "b_p50_s"], "values": [[0, 1.0]]}
    ]
    assert check_ratio(compare, [(ta, a), (tb, b)])[0].endswith("share no row to merge")
    b[0]["tags"]["scenario"] = "forward"
    assert check_ratio(compare, [(ta, a), (tb, b)]) == []


# ------------------------------------------------------------------------------------------ live data
SMALL_DATASET = ("utt01", "utt02")
POWER_TRACE = "t_s,watts\n" + "".join(f"{i * 0.05:.2f},{5 + (i % 10) * 0.4:.2f}\n" for i in range(40))


def fake_sysfs(root: Path) -> Path:
    """Thermal zones and cpufreq laid out as the kernel ABI documents (millidegrees, kHz)."""
    for n, (kind, milli) in enumerate((("x86_pkg_temp", 51000), ("acpitz", 43000))):
        z = root / "class" / "thermal" / f"thermal_zone{n}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{milli}\n")
    for cpu in (0, 1):
        f = root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq"
        f.mkdir(parents=True)
        (f / "scaling_cur_freq").write_text("1800000\n")
        (f / "scaling_governor").write_text("performance\n")
        (f / "cpuinfo_max_freq").write_text("2400000\n")
        t = f.parent / "thermal_throttle"  # Intel's counters: constant -> throttled is False (not unknown)
        t.mkdir()
        (t / "core_throttle_count").write_text("0\n")
        (t / "package_throttle_count").write_text("0\n")
    return root


def small_dataset(directory: Path) -> Path:
    src = ROOT / "agent" / "datasets" / "builtin"
    directory.mkdir()
    rows = [
        r
        for r in (src / "transcripts.tsv").read_text().splitlines()
        if r.split("\t")[0] in ("id", *SMALL_DATASET)
    ]
    (directory / "transcripts.tsv").write_text("\n".join(rows) + "\n")
    for utt in SMALL_DATASET:
        shutil.copy(src / f"{utt}.flac", directory / f"{utt}.flac")
    return directory


def _count(influx, db: str, query: str) -> int:  # type: ignore[no-untyped-def]
    try:
        rows = influx.points(query, db)
    except Exception:  # database not created yet
        return -1
    return sum(int(r["count"]) for r in rows)


CAMPAIGN_MODELS = "conformer-hybrid:tiny,whisper-tiny.en"
"""The campaign job's models (on host2, where no other run uses them: the other panels' checks leave the
campaign's results out); Whisper for a WER, the hybrid model for tokens/s without a long decode."""


def campaign_points(base: Path, mosquitto, influxdb, db: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """A real campaign for the Campaigns dashboard: host2's daemon runs one job (a result tagged with the
    campaign, job states), refuses an over-budget one (a reason), and `campaign report` against itself
    writes the regression verdicts. Returns the job's result documents (from the daemon's store)."""
    import os
    import signal
    import subprocess
    import sys

    from edgebench.agent.daemon.jobs import JobMessage, job_topic
    from edgebench.agent.runspec import from_options
    from edgebench.collector.campaign.link import ControllerLink
    from edgebench.collector.config import load_config
    from tests.test_publish import write_config

    agent = write_config(
        base / "daemon.toml",
        mosquitto,
        host="host2",
        user="host2",
        spool=base / "daemon-spool.sqlite",
        confirm="collector",
        extra=("[daemon]", "max_job_seconds = 120"),
    )
    controller = base / "controller.toml"
    controller.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.tls_port}\ntls = true\n'
        f'ca_file = "{mosquitto.ca_file}"\n[controller]\nusername = "controller"\n'
        f'password = "{mosquitto.users["controller"]}"\n'
        f'[influx]\nurl = "{influxdb.url}"\ndatabase = "{db}"\n'
    )
    log = base / "serve.log"
    chip = base / "daemon-sys" / "class" / "hwmon" / "hwmon0"  # an INA226-like power monitor: 4.5 W
    chip.mkdir(parents=True)
    (chip / "name").write_text("ina226\n")
    (chip / "power1_input").write_text("4500000\n")
    env = {
        **os.environ,
        "EDGEBENCH_DATA_DIR": str(base / "daemon-data"),
        "EDGEBENCH_SYSFS_ROOT": str(base / "daemon-sys"),
        "HF_HUB_OFFLINE": "1",
    }
    agent_cli = [sys.executable, "-c", "from edgebench.agent.cli.main import main; main()"]
    collector_cli = [sys.executable, "-c", "from edgebench.collector.cli import main; main()"]
    with open(log, "ab") as out:
        daemon = subprocess.Popen(
            [*agent_cli, "serve", "--config", str(agent)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*collector_cli, "campaign", args[0], "--config", str(controller), *args[1:]],
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        deadline = time.monotonic() + 60
        while "serve: connected" not in log.read_text():
            assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        over = from_options({"model": "lstm-ctc:tiny", "max_duration": 3600})
        with ControllerLink(load_config(controller)) as link:  # refused first: the latest job is done
            body = JobMessage(job_id="over-budget", campaign="dash", spec=over).model_dump_json()
            assert link.publish(job_topic(MQTT_FLEET, "host2"), body.encode()) is None
        job = ["-m", CAMPAIGN_MODELS, "--scenario", "forward,generate,transcribe", "--threads", "1"]
        job += ["--min-iterations", "6", "--min-duration", "0", "--warmup", "0", "--new-tokens", "4"]
        job += ["--power-source", "hwmon", "--idle-seconds", "0", "--limit", "2", "--beam-size", "1"]
        job += ["--max-duration", "20"]  # 6 configurations x 20 s: within the device's 120 s budget
        r = ctl("start", "dash", "--add", "--hosts", "host2", "--", *job)
        assert r.returncode == 0, r.stdout + r.stderr
        assert ctl("status", "dash", "--wait", "120").returncode == 0
        deadline = time.monotonic() + 60
        refused = 'SELECT count("state") FROM "campaign_job" WHERE "state" = \'refused\''
        while True:
            n = _count(influxdb, db, 'SELECT count("seq") FROM "inference" WHERE "campaign" = \'dash\'')
            jobs = _count(influxdb, db, refused)
            if (n, jobs) == (6, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert (n, jobs) == (6, 1), (n, jobs)
        r = ctl("report", "dash", "--baseline", "dash")
        assert r.returncode == 0 and "no regression" in r.stdout, r.stdout + r.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    export = subprocess.run(
        [*agent_cli, "results", "export", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(export.stdout)


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory, mosquitto, influxdb):  # type: ignore[no-untyped-def]
    """A database filled end to end by real agent runs, MQTT and the collector.
    SLOW: ~3-5 min on 2 shared cores (four agent runs: torch lstm-ctc x2 precisions x3 scenarios on two
    hosts, Whisper tiny.en transcribe, onnxruntime lstm-ctc x2 precisions x2 scenarios)."""
    from tests.servers import MqttProbe
    from tests.test_collector import start_collector
    from tests.test_publish import write_config

    base = tmp_path_factory.mktemp("grafana-live")
    procs: list = []
    (base / "collector").mkdir()
    _collector, db = start_collector(procs, base / "collector", mosquitto, influxdb)
    try:
        dataset = small_dataset(base / "dataset")
        trace = base / "power.csv"
        trace.write_text(POWER_TRACE)
        env = {"EDGEBENCH_SYSFS_ROOT": str(fake_sysfs(base / "sys"))}
        common = ["--min-iterations", "3", "--min-duration", "0", "--warmup", "0", "--idle-seconds", "0.3"]
        common += ["--json", "--dataset", str(dataset), "--power-source", f"replay:{trace}"]
        lstm = "-m lstm-ctc:tiny --scenario forward,generate,transcribe --precision fp32,int8 --ctc-weight 1"
        lstm += " --new-tokens 4 --audio-seconds 1,2"  # a sweep: one overview row per input length
        onnx = "-m lstm-ctc:tiny --scenario forward,transcribe"  # exported encoder + CTC head: no generate
        runs = [  # two hosts with the same configurations (Compare), a trained model for WER
            ("host1", lstm.split()),
            # transcribe, and a live stream (local-agreement: partials too) at 20x real time: it falls behind
            ("host1", ["-m", "whisper-tiny.en", "--scenario", "transcribe,stream", "--stream-speed", "20"]),
            ("host2", lstm.split()),
            (
                "host2",
                [*onnx.split(), "--runtime", "onnxruntime", "--precision", "fp32,int8", "--ctc-weight", "1"],
            ),
        ]
        docs: list[dict] = []
        for host, args in runs:
            config = write_config(
                base / f"{host}-{len(docs)}.toml",
                mosquitto,
                host=host,
                user=host,
                spool=base / f"{host}-{len(docs)}.sqlite",
            )
            proc = run_cli("run", *args, *common, "--config", str(config), env=env)
            assert proc.returncode == 0, proc.stderr[-3000:]
            docs += json.loads(proc.stdout)
        docs += campaign_points(base, mosquitto, influxdb, db)
        probe = MqttProbe(mosquitto, "host1", client_id=f"grafana-{uuid.uuid4().hex[:6]}")
        assert not probe.connect().is_failure
        # host1's next run after a torch update (its Whisper result again, one library version changed):
        # the Trends annotation marks it, and only it
        updated = json.loads(json.dumps(next(d for d in docs if d["config"]["model"] == "whisper-tiny.en")))
        updated |= {"run_id": str(uuid.uuid4()), "created_ns": time.time_ns()}
        updated["sysinfo"]["libraries"]["torch"] = "99.0.0"
        probe.publish(f"edgebench/v1/{MQTT_FLEET}/host1/result", json.dumps(updated).encode(), qos=1)
        docs.append(updated)
        # one malformed message -> a dead letter (and a deadletter point)
        probe.publish(f"edgebench/v1/{MQTT_FLEET}/host1/result", b"{not json", qos=1)
        probe.close()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = _count(influxdb, db, 'SELECT count("seq") FROM "inference"')
            dl = _count(influxdb, db, 'SELECT count("count") FROM "deadletter"')
            st = _count(influxdb, db, 'SELECT count("online") FROM "agent_status"')
            if n == len(docs) and dl >= 1 and st >= 1:
                break
            time.sleep(0.3)
        assert n == len(docs), f"{n} inference points for {len(docs)} documents"
        yield influxdb, db, docs
    finally:
        for p in procs:
            if p.alive():
                p.terminate()


@pytest.mark.parametrize("mode", ["all", "explicit"])  # slow: uses fleet_db (~2-5 min, once per module)
def test_every_panel_query_returns_data(fleet_db, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Every panel of every dashboard returns non-empty series with the columns it selects (each column
    non-null somewhere), with "All" and with every value listed explicitly (the regex alternation path)."""
    influx, db, _docs = fleet_db
    now_ms = int(time.time() * 1000)
    choose = {"host_a": "host1", "host_b": "host2", "precision_a": "fp32", "precision_b": "int8"}
    choose |= {"runtime_a": "torch", "runtime_b": "torch"}  # generate (tokens/s) runs on torch only
    n_panels = n_queries = 0
    failures: list[str] = []
    for dash in DASHBOARDS.values():
        result = verify_dashboard(
            dash,
            lambda q: influx.query(q, db),
            time_from="now-1h",
            now_ms=now_ms,
            explicit=mode == "explicit",
            choose=choose,
        )
        failures += [f"{dash['uid']}: {p}" for p in result.problems]
        for name in ("host", "host_a"):
            if name in result.variables:
                assert {"host1", "host2"} <= set(result.variables[name]), result.variables
        if "precision" in result.variables:
            assert {"fp32", "int8"} <= set(result.variables["precision"])
        if "runtime" in result.variables:
            assert {"torch", "onnxruntime"} <= set(result.variables["runtime"])
        n_panels += len(panels_of(dash))
        n_queries += len(result.queries)
        failures += [
            f"{q.where}: {'; '.join(q.problems)}\n    {q.sent}" for q in result.queries if q.problems
        ]
    assert n_queries == sum(query_count(d) for d in DASHBOARDS.values())
    assert not failures, f"{len(failures)} of {n_queries} queries failed:\n" + "\n".join(failures)
    print(
        f"\ndashboard verification ({mode}): {len(DASHBOARDS)} dashboards, {n_panels} panels, "
        f"{n_queries} queries, all non-empty"
    )


def test_panels_show_the_measured_values(fleet_db) -> None:  # type: ignore[no-untyped-def]
    """Beyond non-empty: the numbers on the panels are the ones the agents measured and published."""
    influx, db, docs = fleet_db
    results = {}
    for dash in DASHBOARDS.values():
        r = verify_dashboard(
            dash, lambda q: influx.query(q, db), time_from="now-1h", now_ms=int(time.time() * 1000)
        )
        results |= {(dash["uid"], q.panel, q.ref): q.data for q in r.queries}

    def rows(uid: str, panel: str, ref: str = "A") -> list[dict[str, Any]]:
        return [
            {**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))}
            for s in results[(uid, panel, ref)]
            for v in s["values"]
        ]

    def tag(value: object) -> str:
        return "" if value is None else f"{float(value):g}"  # type: ignore[arg-type]

    def key(d: dict[str, Any]) -> tuple[str, ...]:
        c = d["config"]
        axes = (c["batch_size"], c["audio_seconds"], c["new_tokens"], c["ctc_weight"])
        return (d["host"], c["model"], c["runtime"], c["precision"], c["scenario"], *map(tag, axes))

    def row_key(r: dict[str, Any]) -> tuple[str, ...]:
        axes = ("batch_size", "input_seconds", "new_tokens", "ctc_weight")
        return (
            r["host"],
            r["model"],
            r["runtime"],
            r["precision"],
            r["scenario"],
            *(r.get(a) or "" for a in axes),
        )

    campaign = {(d["host"], d["config"]["model"]) for d in docs if d["config"].get("campaign")}
    agent_runs = [d for d in docs if (d["host"], d["config"]["model"]) not in campaign]
    latest = {key(d): d for d in sorted(agent_runs, key=lambda d: d["created_ns"])}
    table = rows("edgebench-fleet-overview", "Latest result per configuration and scenario")
    table = [r for r in table if (r["host"], r["model"]) not in campaign]
    # torch: 2 hosts x 2 precisions x (forward, generate at 1 and 2 s + transcribe), Whisper transcribe
    # and stream, onnxruntime: 2 precisions x 2 scenarios: one row per configuration, a sweep never
    # merged into one
    assert len(table) == len(latest) == 26
    assert sorted(map(row_key, table)) == sorted(latest)
    for row in table:
        doc = latest[row_key(row)]
        section = doc[row["scenario"]]
        summary = section["latency_s"] if row["scenario"] != "stream" else section["compute_s"]  # per chunk
        assert row["p50_s"] == pytest.approx(summary["p50"], rel=1e-12)
        joules = doc["energy"]["joules_per_iteration"]
        assert joules is not None and row["joules_per_iteration"] == pytest.approx(joules, rel=1e-12)

    (wer,) = [
        r
        for r in rows("edgebench-accuracy-cost", "Accuracy and cost per configuration")
        if (r["host"], r["model"]) not in campaign
    ]
    whisper = next(d for d in docs if d["config"]["model"] == "whisper-tiny.en")
    assert wer["model"] == "whisper-tiny.en" and wer["wer"] == pytest.approx(whisper["transcribe"]["wer"])

    samples = rows("edgebench-run-detail", "Latency from the samples")
    n_samples = sum(
        len((d["forward"] or d["generate"] or {}).get("latency_samples_s", []))
        or len((d["transcribe"] or {}).get("per_utterance", []))  # a stream has stream_chunk points
        for d in docs
    )
    assert sum(r["n"] for r in samples) == n_samples
    # Run detail narrowed to one run (the overview's link sets $run_id): only that run's samples
    detail = DASHBOARDS["run-detail"]
    variables = variables_of(detail)
    panel = next(p for p in detail["panels"] if p["title"] == "Latency from the samples")
    current = {name: [gi.ALL] for name in variables} | {"run_id": [whisper["run_id"]]}
    sent = gi.interpolate(panel["targets"][0]["query"], variables, current, time_from="now-1h")
    (series,) = influx.query(sent, db)["results"][0]["series"]
    assert series["values"][0][1] == len(whisper["transcribe"]["per_utterance"])
    assert series["tags"]["model"] == "whisper-tiny.en"

    # Trends marks host1's run after its torch update, and nothing else
    (changed,) = rows("edgebench-trends", "annotation Software changed", "-")
    updated = docs[-1]
    assert changed["host"] == "host1" and changed["time"] == updated["created_ns"], changed

    health = "edgebench-fleet-health"
    assert rows(health, "Results in range")[0]["results"] == len(docs)
    assert rows(health, "Dead letters in range")[0]["deadletters"] == 1
    assert {r["host"] for r in rows(health, "Agents: current state")} == {"host1", "host2"}
    last = {r["host"]: r["time"] for r in rows(health, "Last result per host")}  # epoch ns (tests.servers)
    assert last == {h: max(d["created_ns"] for d in docs if d["host"] == h) for h in ("host1", "host2")}


def test_check_command_reports_every_query(fleet_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`grafana check` on the filled database: every query has data; on an empty database: all EMPTY,
    exit 1 with --strict (and 0 without: missing data is not a broken dashboard)."""
    from tests.test_grafana_push import collector_cli

    influx, db, _docs = fleet_db
    n = sum(query_count(d) for d in DASHBOARDS.values())
    r = collector_cli(
        "grafana", "check", "--influx-url", influx.url, "--database", db, "--from", "now-1h", "--strict"
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert f"{n} queries: {n} with data, 0 empty, 0 with errors; 3 alert rules, 0 with errors" in r.stdout, (
        r.stdout[-2000:]
    )
    # the agents' runs ended: both hosts' latest status is offline (the rule fires once its 15 min pass)
    assert (
        "alert  Agent offline: 2 series, FIRING for 2: fleet=lab, host=host1; fleet=lab, host=host2"
        in r.stdout
    )
    assert "alert  Transcription slower than real time: " in r.stdout
    empty_db = influx.new_database("grafana_empty")
    r = collector_cli("grafana", "check", "--influx-url", influx.url, "--database", empty_db, "--strict")
    assert r.returncode == 1 and f"{n} queries: 0 with data, {n} empty, 0 with errors" in r.stdout, r.stdout
    r = collector_cli("grafana", "check", "--influx-url", influx.url, "--database", empty_db)
    assert r.returncode == 0, r.stdout[-2000:]


def test_overview_links_rows_to_run_detail_and_flags_slower_than_real_time() -> None:
    """A row of the overview opens Run detail with that row's configuration (every variable the link
    sets exists there and is filled from a column the row has); RTF > 1 is red."""
    overview = DASHBOARDS["fleet-overview"]
    panel = next(
        p for p in overview["panels"] if p["title"] == "Latest result per configuration and scenario"
    )
    (link,) = panel["fieldConfig"]["defaults"]["links"]
    detail = DASHBOARDS["run-detail"]
    assert link["url"].startswith(f"/d/{detail['uid']}?${{__url_time_range}}")
    linked = re.findall(r"var-(\w+)=\$\{__data\.fields\.(\w+)\}", link["url"])
    assert {v for v, _ in linked} == {"host", "model", "runtime", "precision", "scenario", "run_id"}
    assert {v for v, _ in linked} <= set(variables_of(detail))
    assert all(v == f for v, f in linked)  # the row's own columns (tags from GROUP BY, its run's id)
    assert all(f in panel["targets"][0]["query"] for _, f in linked)
    hidden = [
        o["matcher"]["options"]
        for o in panel["fieldConfig"]["overrides"]
        if o["properties"][0]["id"] == "custom.hidden"
    ]
    assert hidden == ["run_id"]  # queried for the link, not shown
    rtf = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "rtf"]
    steps = next(p["value"]["steps"] for o in rtf for p in o["properties"] if p["id"] == "thresholds")
    assert steps[-1] == {"color": "red", "value": 1.0}
