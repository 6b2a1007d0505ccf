"""Whisper's tokenizer from an exported ``tokenizer.json``, with the ``tokenizers`` library alone.

``tokenizers`` is what ``WhisperTokenizerFast`` wraps; reading the file directly lets an exported model
(ONNX, TFLite) transcribe on a device that has neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebench.agent.errors import MissingExtraError


def load_tokenizer_file(path: Path, runtime: str) -> Any:
    """A ``tokenizers.Tokenizer``; a missing package names the extra to install for ``runtime``."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        extra = {"onnxruntime": "onnx"}.get(runtime, runtime)  # the extra that brings tokenizers
        raise MissingExtraError("tokenizers", extra, f"Whisper transcription on {runtime}") from None
    return Tokenizer.from_file(str(path))
