"""``edgebench-agent export``: export a model once (cached) and print where the files are and their size."""

from __future__ import annotations

from edgebench.agent.errors import EdgebenchError


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB"


def export_command(
    model: str,
    to: str,
    quantize: str | None,
    precision: str,
    weights: str | None,
    seed: int,
    json_out: bool = False,
) -> None:
    from rich.console import Console

    from edgebench.agent.export.base import ExportOptions
    from edgebench.agent.export.pipeline import TARGETS, export_model
    from edgebench.models.registry import resolve

    if to not in TARGETS:
        raise EdgebenchError(f"--to {to}: use {' or '.join(TARGETS)}")
    quantisations = ("q8_0", "q5_1") if to == "ggml" else ("int8",)
    if quantize is not None and quantize not in quantisations:
        raise EdgebenchError(f"--quantize {quantize}: --to {to} takes {' or '.join(quantisations)}")
    if precision not in ("fp32", "fp16"):
        raise EdgebenchError(f"--precision {precision}: use fp32 or fp16 (int8 is --quantize int8)")
    spec = resolve(model)
    options = ExportOptions(target=to, precision=precision, quantize=quantize, weights=weights, seed=seed)  # type: ignore[arg-type]
    if to == "ggml":
        from edgebench.agent.export.ggml import normalised

        if precision == "fp32" and quantize is None:
            raise EdgebenchError(
                "export --to ggml: add --precision fp16 (whisper.cpp's float) or --quantize q8_0|q5_1; "
                "whisper.cpp 1.8.5 cannot run f32 files on the CPU"
            )

        options = normalised(options)  # the variant's one spelling (what `run` asks the cache for)
    err = Console(stderr=True)
    with err.status(f"exporting {spec.name} to {to} (first time only; cached afterwards)"):
        artifact = export_model(spec, options)
    if json_out:  # for scripts (the Ansible role copies exactly these directories to devices)
        import json

        doc = {
            "model": spec.name,
            "target": to,
            "variant": options.quantize or options.precision,
            "directory": str(artifact.directory),
            "reused": artifact.reused,
            "size_bytes": artifact.size_bytes,
            "weights_identity": artifact.weights_identity,
        }
        print(json.dumps(doc))
        return
    out = Console(highlight=False, soft_wrap=True)
    state = "reused from cache" if artifact.reused else "exported"
    out.print(f"{spec.name} -> {to} ({options.quantize or options.precision}): {state}")
    out.print(f"{artifact.directory}  {_size(artifact.size_bytes)} on disk")
    for name, path in sorted(artifact.files.items()):
        out.print(f"  {name:<18} {path.name:<28} {_size(path.stat().st_size)}")
