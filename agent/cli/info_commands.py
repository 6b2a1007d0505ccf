"""``models`` and ``sysinfo`` commands."""

from __future__ import annotations

import json


def list_models(json_out: bool) -> None:
    from rich.console import Console

    from edgebench.agent.cli.tables import compact_table, human_count
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
    # Designed for 80 columns: the name (what one types) is never cut; the weights cell says only where
    # they come from ("–" = none here, explained once in the caption); the description wraps between words.
    t = compact_table(
        "models",
        "weights: – none on this machine (`--weights DIR`, or see the README for offline packages); "
        "random = seeded untrained weights (speed and memory are real; no WER), `--weights FILE` for a "
        "trained state dict",
    )
    t.add_column("name", no_wrap=True, min_width=max(len(r["name"]) for r in rows))
    t.add_column("params", justify="right", no_wrap=True)
    shown = [_weights_word(r["weights"]) for r in rows]
    t.add_column("weights", no_wrap=True, min_width=max(len(w) for w in shown))
    t.add_column("description", ratio=1, overflow="fold")
    for r, weights in zip(rows, shown, strict=True):
        t.add_row(r["name"], human_count(r["params"]), weights, r["description"])
    Console().print(t)


def _weights_word(source: str) -> str:
    """Where a model's weights come from, in one word for the table (``--json`` has the whole text)."""
    if source.startswith("none here"):
        return "–"
    if source.startswith("random"):
        return "random"
    return source.split(" (")[0]


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
