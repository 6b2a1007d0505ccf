"""The export cache: one directory per (model, weights, export options, edgebench version).

Exporting Whisper to ONNX takes tens of seconds and quantising it more, so ``run --runtime onnxruntime``
exports once and every later run reuses the files. The key hashes the *content* of the weights (not their
path), so upgrading a weights package or passing other ``--weights`` exports again, while moving the same
files elsewhere does not. An export is written into a temporary sibling directory and renamed into place
with its manifest written last, so an interrupted export is never mistaken for a finished one.

Layout: ``<cache dir>/exports/<model>-<target>-<variant>-<key>/`` holding the exported files and
:data:`MANIFEST` (component -> file name, exporter facts the runtime needs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.export.base import ExportArtifact, ExportOptions

if TYPE_CHECKING:
    from edgebench.models.spec import ModelSpec

MANIFEST = "edgebench-export.json"
"""Written last: a directory without it is an interrupted export and is replaced."""

CACHE_LAYOUT_VERSION = 2
"""Bumped when the exported graphs change shape or I/O names, so stale exports are not reused."""

Exporter = Callable[["ModelSpec", ExportOptions, Path], ExportArtifact]


def exports_root() -> Path:
    from edgebench.agent.paths import cache_dir

    return cache_dir() / "exports"


def weights_identity(spec: ModelSpec, options: ExportOptions) -> str:
    """What distinguishes these weights from others: a content hash of the weight files, or the seed of
    untrained random weights."""
    from edgebench.models.whisper.ct2_convert import file_sha256

    if spec.family == "whisper":
        from edgebench.models.whisper.weights import WEIGHT_FILES, resolve_whisper_weights

        source = resolve_whisper_weights(spec, options.weights)
        files = sorted(source.path / name for name in WEIGHT_FILES if (source.path / name).is_file())
        return "whisper:" + ",".join(file_sha256(f)[:16] for f in files)
    if options.weights is None:
        return f"random(seed={options.seed})"
    path = Path(options.weights).expanduser()
    if not path.is_file():
        raise EdgebenchError(f"hybrid model weights not found: {path}")
    return "state-dict:" + file_sha256(path)[:16]


def _variant(options: ExportOptions) -> str:
    return options.quantize or options.precision


def export_key(spec: ModelSpec, options: ExportOptions) -> str:
    """Hash of everything that changes the exported files."""
    import edgebench.agent as agent

    fields = asdict(options)
    fields.pop("weights")  # the path itself does not matter, its content (in weights_identity) does
    payload = {
        "layout": CACHE_LAYOUT_VERSION,
        "spec": asdict(spec),
        "weights": weights_identity(spec, options),
        "options": fields,
        "edgebench": agent.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def export_dir(spec: ModelSpec, options: ExportOptions) -> Path:
    safe = spec.name.replace(":", "-").replace("/", "-")
    return exports_root() / f"{safe}-{options.target}-{_variant(options)}-{export_key(spec, options)}"


def load_artifact(directory: Path) -> ExportArtifact | None:
    """The finished export in ``directory``, or None if it is missing, interrupted or damaged."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        options = ExportOptions(**manifest["options"])
        files = {name: directory / rel for name, rel in manifest["files"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(p.is_file() for p in files.values()):
        return None
    return ExportArtifact(
        model=manifest["model"],
        options=options,
        directory=directory,
        files=files,
        reused=True,
        meta=manifest.get("meta", {}),
    )


def _write_manifest(artifact: ExportArtifact, directory: Path) -> None:
    import edgebench.agent as agent

    files = {}
    for name, path in artifact.files.items():
        try:
            files[name] = str(Path(path).resolve().relative_to(artifact.directory.resolve()))
        except ValueError:
            raise EdgebenchError(
                f"exporter wrote {name} outside its output directory ({path}): cannot cache it"
            ) from None
    manifest = {
        "model": artifact.model,
        "options": asdict(artifact.options),
        "files": files,
        "meta": artifact.meta,
        "edgebench_version": agent.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def cached_export(spec: ModelSpec, options: ExportOptions, exporter: Exporter) -> ExportArtifact:
    """The cached export for (spec, options), running ``exporter(spec, options, out_dir)`` on a miss.

    ``exporter`` writes into the empty ``out_dir`` it is given and returns an artifact whose files lie
    under it; the result is moved to its final place atomically (a concurrent run that finished first
    wins and its files are used).
    """
    target = export_dir(spec, options)
    found = load_artifact(target)
    if found is not None:
        return found
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        artifact = exporter(spec, options, tmp)
        artifact.directory = tmp
        _write_manifest(artifact, tmp)
        tmp.chmod(0o755)
        if target.exists():
            if load_artifact(target) is not None:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return load_artifact(target)  # type: ignore[return-value]
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    done = load_artifact(target)
    if done is None:  # pragma: no cover - the rename above just put it there
        raise EdgebenchError(f"export to {target} did not complete")
    done.reused = False
    return done
