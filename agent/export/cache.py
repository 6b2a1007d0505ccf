"""The export cache: one directory per (model, weights, export options, edgebench version).

Exporting Whisper to ONNX takes tens of seconds and quantising it more, so ``run --runtime onnxruntime``
exports once and every later run reuses the files. The key hashes the *content* of the weights (not their
path), so upgrading a weights package or passing other ``--weights`` exports again, while moving the same
files elsewhere does not. An export is written into a temporary sibling directory and renamed into place
with its manifest written last, so an interrupted export is never mistaken for a finished one.

Layout: ``<cache dir>/exports/<model>-<target>-<variant>-<key>/`` holding the exported files and
:data:`MANIFEST` (component -> file name, exporter facts the runtime needs, the weights' identity).

A device that only *runs* models (a Raspberry Pi agent: no torch, often no weights) cannot compute the
key, since that needs the weights the export was made from. It gets the controller's exports copied into
its cache and finds them by model name and export options instead (:func:`find_copied_export`): the
manifest's weights identity is taken on trust and the result says so. ``--weights`` may also name an
export directly (:func:`prebuilt_export`).
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

CACHE_LAYOUT_VERSION = 3
"""Bumped when the exported graphs or the manifest change, so stale exports are not reused. 3: the manifest
records its layout and the weights' identity (exports copied to devices are found by them)."""

Exporter = Callable[["ModelSpec", ExportOptions, Path], ExportArtifact]


def exports_root() -> Path:
    from edgebench.agent.paths import cache_dir

    return cache_dir() / "exports"


def weights_identity(spec: ModelSpec, options: ExportOptions) -> str:
    """What distinguishes these weights from others: a content hash of the weight files, or the seed of
    untrained random weights."""
    from edgebench.models.whisper.ct2_convert import file_sha256

    if options.target == "ctranslate2":
        from edgebench.agent.export.ctranslate2 import weights_identity as ct2_identity

        return ct2_identity(spec, options)
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


def export_key(spec: ModelSpec, options: ExportOptions, identity: str | None = None) -> str:
    """Hash of everything that changes the exported files (``identity``: the weights' identity when
    already computed)."""
    import edgebench.agent as agent

    identity = identity or weights_identity(spec, options)
    payload = {
        "layout": CACHE_LAYOUT_VERSION,
        "spec": asdict(spec),
        "weights": identity,
        "options": _export_fields(options, identity),
        "edgebench": agent.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def export_dir(spec: ModelSpec, options: ExportOptions, identity: str | None = None) -> Path:
    safe = spec.name.replace(":", "-").replace("/", "-")
    key = export_key(spec, options, identity)
    return exports_root() / f"{safe}-{options.target}-{_variant(options)}-{key}"


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
    if manifest.get("layout") != CACHE_LAYOUT_VERSION or not manifest.get("weights"):
        return None  # an older edgebench's export (no identity to trust): export again
    return ExportArtifact(
        model=manifest["model"],
        options=options,
        directory=directory,
        files=files,
        reused=True,
        meta=manifest.get("meta", {}),
        weights_identity=manifest.get("weights"),
        created=str(manifest.get("created", "")),
    )


def _export_fields(options: ExportOptions, identity: str | None) -> dict:
    """The options that change the exported files. Never the ``--weights`` path (its content, in the
    identity, does); the seed only for seeded random weights (``run --seed`` also draws datasets, and must
    not re-export a trained model)."""
    fields = asdict(options)
    fields.pop("weights")
    if not (identity or "").startswith("random("):
        fields.pop("seed")
    return fields


def _same_export(artifact: ExportArtifact, options: ExportOptions) -> bool:
    identity = artifact.weights_identity
    return _export_fields(artifact.options, identity) == _export_fields(options, identity)


def find_copied_export(spec: ModelSpec, options: ExportOptions) -> ExportArtifact | None:
    """An export of ``spec`` with ``options`` in this machine's cache, found by name, not by key.

    For devices that cannot compute the key (no torch, no weights): their exports were made on a
    controller and copied here. Several exports of the same model from *different* weights are ambiguous
    and refused (``--weights`` then names the directory); copies of one export (other edgebench versions)
    are fine, the newest wins.
    """
    root = exports_root()
    safe = spec.name.replace(":", "-").replace("/", "-")
    found: list[ExportArtifact] = []
    for directory in sorted(root.glob(f"{safe}-{options.target}-{_variant(options)}-*")):
        artifact = load_artifact(directory)
        if artifact is not None and artifact.model == spec.name and _same_export(artifact, options):
            found.append(artifact)
    identities = {a.weights_identity for a in found}
    if len(identities) > 1:
        dirs = ", ".join(str(a.directory) for a in found)
        raise EdgebenchError(
            f"the cache holds exports of {spec.name} from {len(identities)} different weights ({dirs}): "
            "pass the one to run with --weights DIR"
        )
    if not found:
        return None
    newest = max(found, key=lambda a: a.created)  # when it was exported (copies reset file times)
    newest.verified = False
    return newest


def prebuilt_export(spec: ModelSpec, options: ExportOptions) -> ExportArtifact | None:
    """The export ``--weights`` names (its directory, or any file in it), or None when ``--weights``
    names model weights (or nothing). Checked against the model and export options asked for."""
    if not options.weights:
        return None
    path = Path(options.weights).expanduser()
    suffix = f".{options.target}"
    if path.is_file() and (path.parent / MANIFEST).is_file():
        path = path.parent  # any file of an export stands for the export
    if not (path.is_dir() and (path / MANIFEST).is_file()):
        if path.suffix.lower() == suffix and not path.exists():
            raise EdgebenchError(f"--weights {path}: no such file")
        if path.suffix.lower() == suffix or (path.is_dir() and any(path.glob(f"*{suffix}"))):
            raise EdgebenchError(
                f"{path} is not an edgebench export (no {MANIFEST} next to it): pass the directory "
                f"written by `edgebench-agent export --model {spec.name} --to {options.target}`"
            )
        return None
    artifact = load_artifact(path)
    if artifact is None:
        raise EdgebenchError(f"{path} is an incomplete, damaged or outdated export: export it again")
    if artifact.options.target != options.target or artifact.model != spec.name:
        raise EdgebenchError(
            f"{path} is a {artifact.options.target} export of {artifact.model}, not a {options.target} "
            f"export of {spec.name}"
        )
    if _variant(artifact.options) != _variant(options):
        have, asked = _variant(artifact.options), _variant(options)
        if options.target == "ggml":  # whisper.cpp files: fp16 is f16, int8 is the --ggml-quant type
            hint = "--precision fp16" if have == "fp16" else f"--precision int8 --ggml-quant {have}"
            raise EdgebenchError(f"{path} is a {have} whisper.cpp file but {asked} was asked: use {hint}")
        raise EdgebenchError(
            f"{path} holds {have} graphs but --precision {asked} was asked: use --precision {have} with it"
        )
    if not _same_export(artifact, options):
        raise EdgebenchError(
            f"{path} was exported with seed {artifact.options.seed} (untrained weights), not {options.seed}: "
            f"use --seed {artifact.options.seed} with it"
        )
    artifact.verified = False
    return artifact


def exporter_available(target: str) -> bool:
    """Whether this machine can export to ``target`` at all: torch is the source of the ONNX and TFLite
    exports, plus onnx for ONNX, and litert-torch (here or in ``EDGEBENCH_LITERT_PYTHON``) for TFLite."""
    import importlib.util

    if target == "ctranslate2":
        return True  # a copy, no exporter: weights_identity() says whether there is a source
    if target == "ggml":  # numpy + safetensors from the Hugging Face layout (weights_identity finds it)
        return importlib.util.find_spec("safetensors") is not None
    if importlib.util.find_spec("torch") is None:
        return False
    if target == "onnx":
        return importlib.util.find_spec("onnx") is not None
    from edgebench.agent.export.tflite import CONVERTER_ENV, litert_torch_importable

    return litert_torch_importable() or bool(os.environ.get(CONVERTER_ENV))


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
        "layout": CACHE_LAYOUT_VERSION,
        "model": artifact.model,
        "weights": artifact.weights_identity,
        "options": asdict(artifact.options),
        "files": files,
        "meta": artifact.meta,
        "edgebench_version": agent.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def cached_export(spec: ModelSpec, options: ExportOptions, exporter: Exporter) -> ExportArtifact:
    """The cached export for (spec, options), running ``exporter(spec, options, out_dir)`` on a miss.

    ``exporter`` writes into the empty ``out_dir`` it is given and returns an artifact whose files lie
    under it; the result is moved to its final place atomically (a concurrent run that finished first
    wins and its files are used).

    Without torch (nothing can be exported here) or without the weights, an export copied into the cache
    is looked up by name instead (:func:`find_copied_export`); ``--weights`` naming an export is used
    as it is (:func:`prebuilt_export`).
    """
    prebuilt = prebuilt_export(spec, options)
    if prebuilt is not None:
        return prebuilt
    if options.weights is None and not exporter_available(options.target):
        needs = {"onnx": "edgebench[export]", "ggml": "safetensors, in edgebench[export]"}.get(
            options.target, "edgebench[export] + litert-torch"
        )
        return _copied_or_explain(spec, options, f"this machine has no {options.target} exporter ({needs})")
    try:
        identity = weights_identity(spec, options)
    except EdgebenchError as no_weights:
        if options.weights is not None:
            raise
        found = find_copied_export(spec, options)
        if found is not None:
            return found
        raise EdgebenchError(
            f"{no_weights} (or copy an `edgebench-agent export` directory of {spec.name} into "
            f"{exports_root()})"
        ) from None
    target = export_dir(spec, options, identity)
    found = load_artifact(target)
    if found is not None:
        return found
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        artifact = exporter(spec, options, tmp)
        artifact.directory = tmp
        artifact.weights_identity = identity
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


def _copied_or_explain(spec: ModelSpec, options: ExportOptions, why: str) -> ExportArtifact:
    """The copied export for (spec, options), or one line saying why there is none and how to get it."""
    found = find_copied_export(spec, options)
    if found is not None:
        return found
    variant = _variant(options)
    flags = (
        f" --quantize {options.quantize}"
        if options.quantize
        else (" --precision fp16" if variant == "fp16" else "")
    )
    if spec.family != "whisper" and options.weights is None and options.seed:
        flags += f" --seed {options.seed}"  # untrained weights: the seed makes the model
    raise EdgebenchError(
        f"no {options.target} export of {spec.name} ({variant}) in {exports_root()}, and {why}: run "
        f"`edgebench-agent export --model {spec.name} --to {options.target}{flags}` on a machine with "
        f"the exporters and copy the directory it prints into {exports_root()} (or pass it with "
        "--weights DIR)"
    )


def export_in_child(spec_name: str, options: ExportOptions) -> None:
    """Export ``spec_name`` into the cache in a separate ``edgebench-agent export`` process, unless an
    export with these options is there already. Exporting imports torch (and onnx, transformers,
    litert-torch) and peaks at several times the model's size: done in this process it would be counted
    as the runtime's memory, and stay imported while the runtime is measured."""
    import subprocess
    import sys

    from edgebench.models.registry import resolve

    if options.weights is not None or find_copied_export(resolve(spec_name), options) is not None:
        return
    cmd = [sys.executable, "-c", "from edgebench.agent.cli.main import main; main()", "export"]
    cmd += ["--model", spec_name, "--to", options.target, "--precision", options.precision]
    cmd += ["--seed", str(options.seed), "--json"]
    if options.quantize:
        cmd += ["--quantize", options.quantize]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        last = last.removeprefix("edgebench-agent: error: ")
        raise EdgebenchError(f"exporting {spec_name} to {options.target} failed: {last}")
