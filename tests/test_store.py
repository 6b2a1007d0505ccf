"""Local SQLite store and exports, with real result documents."""

from __future__ import annotations

import csv
import io
import json

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.results.schema import (
    ForwardResult,
    ModelReport,
    ResultDocument,
    RunConfig,
    Summary,
    SysInfo,
)
from edgebench.agent.results.store import ResultStore, to_csv, to_json
from edgebench.agent.stats import summarize


def make_doc(run_id: str, seq: int, mean: float = 0.01) -> ResultDocument:
    s: Summary = summarize([mean, mean * 1.1, mean * 0.9])
    return ResultDocument(
        run_id=run_id,
        seq=seq,
        host="h1",
        device_class="x86",
        edgebench_version="test",
        config=RunConfig(
            model="whisper-tiny.en",
            runtime="torch",
            precision="fp32",
            device="cpu",
            scenario="forward",
            threads=2,
            frontend="torch",
            audio_seconds=10,
        ),
        model=ModelReport(
            name="whisper-tiny.en",
            family="whisper",
            trained=True,
            weights_source="x",
            params={"total": 3, "encoder": 1, "decoder": 2},
        ),
        sysinfo=SysInfo(
            hostname="h1",
            device_class="x86",
            arch="x86_64",
            cpu_cores_logical=2,
            ram_bytes=1,
            os="Debian",
            kernel="6",
            python="3.11",
            libraries={"torch": "2.13"},
        ),
        forward=ForwardResult(
            latency_s=s,
            iterations_per_s=1 / s.mean,
            samples_per_s=1 / s.mean,
            latency_samples_s=[mean, mean * 1.1, mean * 0.9],
        ),
    )


def test_add_is_idempotent_and_documents_round_trip(tmp_path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        doc = make_doc("aaaa-1", 0)
        store.add(doc)
        store.add(doc)  # re-saving must overwrite, not duplicate
        store.add(make_doc("aaaa-1", 1))
        docs = list(store.documents("aaaa-1"))
        assert [d.seq for d in docs] == [0, 1]
        assert docs[0] == doc
        assert store.runs()[0]["results"] == 2


def test_resolve_run_prefix_last_and_errors(tmp_path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(EdgebenchError, match="empty"):
            store.resolve_run("last")
        store.add(make_doc("abc-1", 0))
        store.add(make_doc("abd-2", 0))
        assert store.resolve_run("abc") == "abc-1"
        with pytest.raises(EdgebenchError, match="ambiguous"):
            store.resolve_run("ab")
        with pytest.raises(EdgebenchError, match="no run"):
            store.resolve_run("zzz")


def test_exports_json_and_flat_csv() -> None:
    docs = [make_doc("r", 0, 0.01), make_doc("r", 1, 0.02)]
    parsed = json.loads(to_json(docs))
    assert [ResultDocument.model_validate(p) for p in parsed] == docs
    rows = list(csv.DictReader(io.StringIO(to_csv(docs))))
    assert len(rows) == 2
    assert float(rows[1]["forward.latency_s.mean"]) == pytest.approx(0.02)
    assert rows[0]["config.model"] == "whisper-tiny.en"
    assert not any("latency_samples_s" in k for k in rows[0])  # per-iteration lists stay out of CSV


def test_unwritable_store_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgebenchError, match="cannot open the results store"):
        ResultStore(blocker / "sub" / "r.sqlite")


def test_emulated_results_are_marked_in_the_table_and_in_influxdb_points() -> None:
    """Emulated timings must never pass for the device's: the table title says so, InfluxDB gets a tag."""
    from rich.console import Console

    from edgebench.agent.cli.tables import results_table
    from edgebench.collector.points import document_to_lines, inference_tags

    real = make_doc("r-1", 0)
    emulated = real.model_copy(deep=True)
    emulated.sysinfo.emulated = "qemu-user aarch64 on x86_64"
    console = Console(width=80, record=True)
    console.print(results_table([emulated]))
    assert console.export_text().startswith("EMULATED (qemu-user aarch64 on x86_64) · edgebench results")
    console = Console(width=80, record=True)
    console.print(results_table([real]))
    assert "EMULATED" not in console.export_text()
    # The report's table and the compare / report notes carry the same mark.
    from edgebench.agent.report.metrics import emulated_hosts_note
    from edgebench.agent.report.tables import report_table

    console = Console(width=80, record=True)
    console.print(report_table([real, emulated]))
    assert console.export_text().startswith("EMULATED (qemu-user aarch64 on x86_64) · ")
    note = emulated_hosts_note([real, emulated])
    assert note == "EMULATED (qemu-user aarch64 on x86_64): h1: timings and energy are not the device's"
    assert emulated_hosts_note([real]) is None
    assert inference_tags(emulated)["emulated"] == "true" and "emulated" not in inference_tags(real)
    lines = document_to_lines(emulated)
    assert any(line.startswith("inference,") and ",emulated=true," in line for line in lines)
