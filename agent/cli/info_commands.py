"""``models`` and ``sysinfo`` commands."""

from __future__ import annotations

import json


def list_models(json_out: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from edgebench.agent.cli.tables import human_count
    from edgebench.models.registry import all_specs
    from edgebench.models.whisper.weights import weights_available

    rows = []
    for spec in all_specs():
        if spec.family == "whisper":
            source = weights_available(spec)
            weights = source or "none here (use --weights DIR, see README)"
        else:
            weights = "random, seeded (untrained); --weights FILE for a trained state dict"
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "params": spec.approx_params,
                "n_mels": spec.n_mels,
                "weights": weights,
                "description": spec.description,
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="models", header_style="bold", title_justify="left")
    for col in ("name", "family", "params", "mels", "weights here", "description"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"], r["family"], human_count(r["params"]), str(r["n_mels"]), r["weights"], r["description"]
        )
    Console().print(t)


def show_sysinfo(json_out: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from edgebench.agent.trackers.sysinfo import collect_sysinfo

    info = collect_sysinfo()
    if json_out:
        print(info.model_dump_json(indent=2))
        return
    t = Table(show_header=False, title="this device", title_justify="left")
    for key, value in info.model_dump().items():
        if key == "libraries":
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "–"
        elif key == "ram_bytes":
            value = f"{value / 2**30:.1f} GiB"
        t.add_row(key, "–" if value is None else str(value))
    Console().print(t)
