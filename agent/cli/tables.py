"""Rich tables for results: what a person reads at the end of a run."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgebench.agent.report.metrics import emulation_mark
from edgebench.agent.report.tables import fmt_mib, fmt_pct
from edgebench.agent.results.schema import ResultDocument, Summary


def _ms(s: Summary) -> str:
    half = (s.ci95_high - s.ci95_low) / 2
    return f"{s.mean * 1e3:.1f}±{half * 1e3:.1f}"


def human_count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _config(doc: ResultDocument) -> str:
    c = doc.config
    parts = [f"b{c.batch_size}"]
    if c.audio_seconds is not None:
        parts.append(f"{c.audio_seconds:g}s")
    if c.new_tokens is not None:
        parts.append(f"{c.new_tokens} tok")
    if c.ctc_weight is not None:
        parts.append(f"ctc {c.ctc_weight:g}")
    if c.language not in (None, "auto"):  # a language given to a multilingual Whisper
        parts.append(f"lang {c.language}")
    if c.task == "translate":
        parts.append("translate")
    if c.scenario == "stream":  # one live stream: no batch
        parts[0] = f"{c.stream_policy} {c.chunk_seconds:g}s"
        if c.stream_speed not in (None, 1.0):
            parts.append(f"x{c.stream_speed:g}")
    return " ".join(parts) if c.scenario != "load" else ""


def _energy(doc: ResultDocument) -> tuple[str, str]:
    """('J/it gross (net)', 'avg W') or dashes; estimated sources are marked with '~'."""
    e = doc.energy
    if e is None or e.joules_per_iteration is None:
        return "–", "–"
    mark = "~" if e.kind == "estimated" else ""
    net = f" ({e.joules_net_per_iteration:.3g})" if e.joules_net_per_iteration is not None else ""
    avg = f"{mark}{e.average_w:.2f}" if e.average_w is not None else "–"
    return f"{mark}{e.joules_per_iteration:.3g}{net}", avg


def energy_caption(docs: Sequence[ResultDocument]) -> str:
    """How energy was obtained (or why not), for the table caption."""
    sources = {
        (d.energy.source, d.energy.kind) for d in docs if d.energy and d.energy.joules_total is not None
    }
    if sources:
        names = ", ".join(f"{s} ({k})" for s, k in sorted(sources, key=str))
        return f" · energy: J per iteration gross (net of idle) and mean W from {names}; ~ = estimate"
    reasons = {d.energy.unavailable_reason for d in docs if d.energy and d.energy.unavailable_reason}
    reasons.discard("energy is not measured for this scenario")
    if not reasons:
        return ""
    reason = sorted(reasons)[0]
    if reason.startswith("energy measurement disabled"):
        return " · energy: not measured (--power-source none)"
    if reason.startswith("no power source found"):  # the per-source list is in the document
        return " · energy: not measured (no power source here: `edgebench-agent power probe` says why)"
    return f" · energy: not measured ({reason})"


def compact_table(title: str, caption: str | None = None) -> Table:
    """The terminal tables' common shape: a rule under the header and one space between columns and
    none at the edges, so that nine columns fit 80 characters; title and caption left-aligned."""
    return Table(
        title=title,
        header_style="bold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        caption=caption,
        caption_justify="left",
    )


def results_table(
    docs: Sequence[ResultDocument], title: str = "edgebench results", width: int | None = None
) -> Table:
    """One row per measured configuration. Session axes (model, runtime, precision, device) that are the
    same for every row move into the title, so the table fits a terminal; ``width`` (the terminal's)
    lets it leave out p50/p90 where the figures would not fit (they never wrap)."""
    axes = {
        "model": lambda d: d.config.model,
        "runtime": lambda d: d.config.runtime,
        "prec": lambda d: d.config.precision,
        "device": lambda d: d.config.device,
    }
    varying = [k for k, get in axes.items() if len({get(d) for d in docs}) > 1]
    constant = [axes[k](docs[0]) for k in axes if k not in varying] if docs else []
    emulated = emulation_mark(docs)
    # First in the title, so that no width cuts it off: emulated timings are not the device's speed.
    mark = [f"[bold red]{escape(emulated)}[/]"] if emulated else []
    t = compact_table(
        " · ".join([*mark, title, *constant]),
        "latency: mean±95% CI, p50/p90 in ms"
        + (" (stream: model time per chunk)" if any(d.stream is not None for d in docs) else "")
        + " · MiB: the model's share (peak RSS − RSS before it loaded) / the process's peak RSS"
        + energy_caption(docs),
    )
    has_energy = _has_energy(docs)
    rows = [_row(d, varying, axes, has_energy) for d in docs]
    # The setup (varying axes + workload) is one column that wraps only between words: its narrowest
    # width is its longest word, so a name one has to type is never cut. Figures never wrap.
    longest = max((len(w) for r in rows for w in r["setup"].split()), default=5)
    columns = [
        ("scenario", "left", "scenario"),
        ("setup", "left", "setup"),
        ("n", "right", "n"),
        ("latency ms", "right", "latency"),
        ("p50/p90", "right", "pct"),
        ("throughput", "right", "thr"),
        ("RTF", "right", "rtf"),
        ("WER/CER", "right", "acc"),
        ("MiB", "right", "mem"),
    ]
    if has_energy:  # columns only when something was measured: the caption says why otherwise
        columns += [("J/it", "right", "joules"), ("W", "right", "watts")]
    shown = []
    for header, just, key in columns:
        if key in ("thr", "rtf", "acc") and all(r[key] == "–" for r in rows):
            continue  # a figure no row has: the column would only take room
        if key == "setup" and not any(r["setup"] for r in rows):
            continue
        shown.append((header, just, key))
    if width is not None:  # figures never wrap: past the width, p50/p90 goes first (the mean ± CI stays)
        need = (
            sum(
                longest if k == "setup" else max(len(h), *(len(Text.from_markup(r[k]).plain) for r in rows))
                for h, _, k in shown
            )
            + 2 * len(shown)  # SIMPLE_HEAD: a one-space rule and one space of padding per column
        )
        if need > width:
            shown = [c for c in shown if c[2] != "pct"]
    for header, just, key in shown:
        t.add_column(
            header,
            justify=just,  # type: ignore[arg-type]
            no_wrap=key != "setup",
            overflow="fold",
            min_width=longest if key == "setup" else None,
        )
    keys = [key for _, _, key in shown]
    for r in rows:
        t.add_row(*(r[k] for k in keys))
    return t


def _has_energy(docs: Sequence[ResultDocument]) -> bool:
    return any(d.energy is not None and d.energy.joules_total is not None for d in docs)


def _row(d: ResultDocument, varying: list[str], axes: dict, has_energy: bool) -> dict[str, str]:
    """One result's cells by column key."""
    lat = n = pct = thr = rtf = acc = "–"
    stats = (
        (d.forward and d.forward.latency_s)
        or (d.generate and d.generate.latency_s)
        or (d.transcribe and d.transcribe.latency_s)
        or (d.stream and d.stream.compute_s)  # per chunk
    )
    if stats:
        lat, n, pct = _ms(stats), str(stats.n), f"{stats.p50 * 1e3:.0f}/{stats.p90 * 1e3:.0f}"
    if d.forward:
        thr = f"{d.forward.iterations_per_s:.2f} it/s"
    elif d.generate:
        thr = f"{d.generate.tokens_per_s:.1f} tok/s"
    elif d.transcribe:
        rtf = f"{d.transcribe.rtf:.3f}"
        tr = d.transcribe
        acc = f"{fmt_pct(tr.wer)}/{fmt_pct(tr.cer)}" if tr.accuracy_meaningful else "–"  # warning says why
    elif d.stream:
        st = d.stream
        rtf = f"{st.rtf:.3f}"
        acc = f"{fmt_pct(st.wer)}/{fmt_pct(st.cer)}" if st.accuracy_meaningful else "–"
    elif d.load:
        lat = f"{d.load.load_s * 1e3:.0f}"
        thr = f"cold {d.load.first_inference_s * 1e3:.0f} ms"
        pct = f"warm {d.load.warm_inference_s * 1e3:.0f}"
    marks = []  # in the setup column, which wraps: the scenario column stays narrow
    if d.memory is not None and d.memory.budget_exceeded_at_bytes is not None:
        marks.append("[bold red]OVER --max-rss[/]")
    if d.telemetry is not None and d.telemetry.throttled:
        marks.append("[bold red]THROTTLED[/]")
    if d.stream is not None and not d.stream.kept_up:
        marks.append("[bold red]BEHIND[/]")  # the live stream table says from when
    if d.interference is not None and d.interference.busy:
        marks.append("[bold yellow]BUSY[/]")  # other processes used the CPUs: see the warning
    scenario = d.config.scenario
    setup = " ".join([*(escape(str(axes[k](d))) for k in varying), _config(d), *marks]).strip()
    joules, watts = _energy(d) if has_energy else ("", "")
    return {
        "scenario": scenario,
        "setup": setup,
        "n": n,
        "latency": lat,
        "pct": pct,
        "thr": thr,
        "rtf": rtf,
        "acc": acc,
        "mem": _memory(d),
        "joules": joules,
        "watts": watts,
    }


def _memory(d: ResultDocument) -> str:
    """'share/peak' in MiB (the share alone means little without the peak, and the other way round)."""
    m = d.memory
    if m is None:
        return "–"
    if m.model_share_bytes is None:  # a document from before schema 1.6
        return fmt_mib(m.peak_rss_bytes)
    return f"{fmt_mib(m.model_share_bytes)}/{fmt_mib(m.peak_rss_bytes)}"


def languages_table(docs: Sequence[ResultDocument]) -> Table | None:
    """WER/CER and language detection per spoken language, for transcriptions of a dataset that names
    its languages (None: no such result). One corpus WER over several languages mixes very different
    difficulties; this is the table to compare across runtimes and precisions."""
    scored = [d for d in docs if d.transcribe is not None and d.transcribe.languages]
    if not scored:
        return None
    axes = ("model", "runtime", "precision", "device")
    varying = [a for a in axes if len({getattr(d.config, a) for d in scored}) > 1]
    t = compact_table(
        "accuracy per language",
        "detected: share of the language's utterances whose language the model detected (--language "
        "auto); – where it was given",
    )
    longest = 5
    rows = []
    for d in scored:
        setup = " ".join([*(escape(str(getattr(d.config, a))) for a in varying), _config(d)]).strip()
        longest = max(longest, *(len(w) for w in setup.split()))
        assert d.transcribe is not None
        for score in d.transcribe.languages:
            detected = "–" if score.detected is None else f"{score.detected:.0%}"
            acc = f"{fmt_pct(score.wer)}/{fmt_pct(score.cer)}"
            rows.append((setup, score.language, str(score.utterances), f"{score.audio_s:.1f}", acc, detected))
            setup = ""  # once per configuration
    t.add_column("setup", overflow="fold", min_width=longest)
    for header in ("lang", "n", "audio s", "WER/CER", "detected"):
        t.add_column(header, justify="left" if header == "lang" else "right", no_wrap=True)
    for row in rows:
        t.add_row(*row)
    return t


def stream_table(docs: Sequence[ResultDocument]) -> Table | None:
    """What live captioning feels like, per streamed configuration (None: no stream result): whether
    the device kept up, how late text became final, and the streamed WER next to the offline one."""
    streamed = [d for d in docs if d.stream is not None]
    if not streamed:
        return None
    energy = any(d.energy is not None and d.energy.joules_per_audio_s is not None for d in streamed)
    axes = ("model", "runtime", "precision", "device")
    varying = [a for a in axes if len({getattr(d.config, a) for d in streamed}) > 1]
    t = compact_table(
        " · ".join([*([m] if (m := emulation_mark(streamed)) else []), "live stream"]),
        "final: from the end of an utterance to its final text, p50/p90 s · partial: to its first "
        "tentative words · backlog: most audio waiting · WER streamed / offline (same audio, whole "
        "utterances)"
        + (" · J/min: energy per minute of audio, W: mean power over the stream" if energy else ""),
    )
    longest = 5
    rows = []
    for d in streamed:
        st = d.stream
        assert st is not None
        setup = " ".join([*(escape(str(getattr(d.config, a))) for a in varying), _config(d)]).strip()
        longest = max(longest, *(len(w) for w in setup.split()))
        kept = "yes" if st.kept_up else f"[bold red]no, {st.fell_behind_at_s or st.audio_s:.0f} s[/]"
        fin = st.finalisation_latency_s
        part = st.first_partial_latency_s
        acc = f"{fmt_pct(st.wer)} / {fmt_pct(st.offline_wer)}" if st.accuracy_meaningful else "–"
        row = [
            setup,
            kept,
            f"{fin.p50:.2f}/{fin.p90:.2f}" if fin else "–",
            f"{part.p50:.2f}" if part else "–",
            f"{st.backlog_max_s:.2f}",
            f"{st.rtf:.3f}",
            acc,
        ]
        if energy:  # per minute of audio, and the mean power over the stream; ~ = an estimate
            e = d.energy
            per_s = e.joules_per_audio_s if e is not None else None
            mark = "~" if e is not None and e.kind == "estimated" else ""
            row.append(f"{mark}{per_s * 60:.3g}" if per_s is not None else "–")
            row.append(f"{mark}{e.average_w:.2f}" if e is not None and e.average_w is not None else "–")
        rows.append(tuple(row))
    t.add_column("setup", overflow="fold", min_width=longest)
    headers = ["kept up", "final s", "partial", "backlog", "RTF", "WER str/off"]
    for header in headers + (["J/min", "W"] if energy else []):
        t.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        t.add_row(*row)
    return t


def models_params_table(docs: Sequence[ResultDocument]) -> Table:
    """Parameter counts per component, once per model, with where the weights came from."""
    t = Table(title="models", header_style="bold", title_justify="left", box=box.SIMPLE_HEAD)
    longest = max((len(d.model.name) for d in docs), default=5)
    t.add_column("model", no_wrap=True, min_width=longest)  # the name one types: never cut
    for col in ("parameters per component", "weights", "trained"):
        t.add_column(col, overflow="fold")
    seen: set[str] = set()
    for d in docs:
        if d.model.name in seen:
            continue
        seen.add(d.model.name)
        p = dict(d.model.params)
        total = p.pop("total", sum(p.values()))
        parts = ", ".join(f"{k} {human_count(v)}" for k, v in p.items())
        t.add_row(
            d.model.name,
            f"total {human_count(total)} ({parts})",
            d.model.weights_source,
            "yes" if d.model.trained else "no (random, seeded)",
        )
    return t
