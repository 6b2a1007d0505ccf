"""LiteRT (TFLite) runtime: .tflite graphs run by the LiteRT interpreter with XNNPACK on the CPU.

The interpreter comes from ``ai_edge_litert`` (the LiteRT package), or from ``tflite_runtime`` when only
that is installed (older Raspberry Pi images, numpy < 2). XNNPACK is the interpreter's default CPU delegate;
``--threads`` sets its thread count (default: one per physical core, as onnxruntime does).

Where the graphs come from, in this order:

* ``--weights DIR`` — a directory written by ``edgebench-agent export --to tflite`` (copied to a device
  that has no torch), or ``--weights DIR/encoder.tflite`` (any file of such a directory);
* ``--weights FILE.tflite`` — a standalone .tflite following edgebench's hybrid encoder+CTC contract
  (inputs ``features [1, n_mels, frames]``, ``lengths [1]``; outputs CTC log-probs, lengths); Whisper needs
  its encoder *and* decoder, so it takes the exported directory;
* otherwise the model is exported from torch (cached; litert-torch in or out of process, see
  :mod:`edgebench.agent.export.tflite`); ``--weights`` then names the torch weights, as on torch.

``--precision`` fp32 runs the fp32 graphs, int8 the dynamic-range int8 graphs (int8 weights, activations
quantised on the fly); fp16 is refused (LiteRT's CPU path computes in fp32).

The graphs are exported at batch 1 with static shapes (LiteRT's strength): a batch runs item by item.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.agent.errors import EdgebenchError, MissingExtraError
from edgebench.agent.results.schema import ModelReport
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions
from edgebench.agent.runtimes.exported_whisper import ExportedWhisperDecoding
from edgebench.models.base import DecodeState, Features
from edgebench.models.whisper.tokenizer_file import load_tokenizer_file

if TYPE_CHECKING:
    from edgebench.agent.export.base import ExportArtifact
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec

PRECISIONS = ("fp32", "int8")
WHISPER_SAMPLES = 480_000


# -- the interpreter -------------------------------------------------------------------------------


def interpreter_class() -> tuple[Any, str]:
    """``(Interpreter class, 'package version')`` from ai_edge_litert, else tflite_runtime."""
    from importlib.metadata import PackageNotFoundError, version

    for module, dist in (
        ("ai_edge_litert.interpreter", "ai-edge-litert"),
        ("tflite_runtime.interpreter", "tflite-runtime"),
    ):
        try:
            mod = __import__(module, fromlist=["Interpreter"])
        except ImportError:
            continue
        try:
            ver = version(dist)
        except PackageNotFoundError:
            ver = "?"
        return mod.Interpreter, f"{dist} {ver}"
    raise MissingExtraError(
        "ai_edge_litert", "litert", "the litert runtime (or tflite_runtime on older images)"
    )


class Graph:
    """One .tflite file in an interpreter, its signature's inputs and outputs addressed by name."""

    def __init__(self, path: Path, threads: int, output_names: list[str] | None = None) -> None:
        interpreter_cls, self.provider = interpreter_class()
        self.path = Path(path)
        if not self.path.is_file():
            raise EdgebenchError(f"TFLite model not found: {self.path}")
        try:
            self.interpreter = interpreter_cls(model_path=str(self.path), num_threads=threads)
            self.interpreter.allocate_tensors()
            runner = self.interpreter.get_signature_runner()
            inputs = runner.get_input_details()
            outputs = runner.get_output_details()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgebenchError(
                f"cannot load TFLite model {self.path}: {first[:300]} (the file is corrupt, truncated or not "
                "a .tflite model: export it again with `edgebench-agent export --to tflite`)"
            ) from None
        self.inputs = {name: d["index"] for name, d in inputs.items()}
        self.input_shapes = {name: tuple(int(s) for s in d["shape"]) for name, d in inputs.items()}
        # litert-torch names signature outputs output_0, output_1, …: give them the exporter's names.
        ordered = sorted(outputs, key=lambda n: int(n.rsplit("_", 1)[-1]) if n[-1].isdigit() else 0)
        names = output_names or ordered
        if len(names) != len(ordered):
            raise EdgebenchError(
                f"{self.path} has {len(ordered)} outputs, expected {len(names)} ({', '.join(names)}): "
                "not a graph of this export"
            )
        self.outputs = {name: outputs[key]["index"] for name, key in zip(names, ordered, strict=True)}
        self.output_shapes = {
            name: tuple(int(s) for s in outputs[key]["shape"])
            for name, key in zip(names, ordered, strict=True)
        }

    def set(self, name: str, value: np.ndarray) -> None:
        self.interpreter.set_tensor(self.inputs[name], value)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get(self, name: str) -> np.ndarray:
        """A copy of an output (the interpreter reuses its buffers on the next invoke)."""
        return self.interpreter.get_tensor(self.outputs[name])

    def run(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            self.set(name, value)
        self.invoke()
        return {name: self.get(name) for name in self.outputs}


# -- finding the graphs ----------------------------------------------------------------------------


def standalone_tflite(weights: str | None) -> Path | None:
    """The single .tflite file ``--weights`` names when it is not part of an edgebench export (a hybrid
    encoder+CTC graph made elsewhere), else None."""
    if not weights:
        return None
    from edgebench.agent.export.cache import MANIFEST

    path = Path(weights).expanduser()
    if path.suffix.lower() != ".tflite" or (path.parent / MANIFEST).is_file():
        return None
    if not path.is_file():
        raise EdgebenchError(f"TFLite model not found: {path}")
    return path


class LiteRTSession(RuntimeSession):
    """A model as .tflite graphs in LiteRT interpreters (see the module docstring)."""

    name = "litert"

    @classmethod
    def unsupported(cls, spec: ModelSpec, scenario: str, ctc_weight: float | None) -> str | None:
        if spec.family != "hybrid":
            return None
        if spec.options.get("encoder") == "lstm":
            from edgebench.agent.export.tflite import LSTM_REASON

            return f"{spec.name} on litert: {LSTM_REASON}"
        if scenario == "generate" or (scenario == "transcribe" and ctc_weight != 1.0):
            what = "generate" if scenario == "generate" else f"transcribe with --ctc-weight {ctc_weight}"
            return (
                f"{spec.name} on litert is exported as encoder + CTC head only: {what} needs the attention "
                "decoder (use --runtime torch for it, or --ctc-weight 1 on litert)"
            )
        return None

    def __init__(self, spec: ModelSpec, options: SessionOptions, frontend: LogMelFrontend) -> None:
        super().__init__(spec, options, frontend)
        _cls, self.provider = interpreter_class()
        if options.precision not in PRECISIONS:
            raise EdgebenchError(
                f"precision '{options.precision}' is not available on litert: use fp32 or int8 "
                "(LiteRT's CPU path computes in fp32; int8 = dynamic-range int8 weights)"
            )
        if options.device.strip().lower() not in ("auto", "cpu"):
            raise EdgebenchError(
                f"device '{options.device}' is not supported by the litert runtime, which runs on the CPU "
                "with XNNPACK: use --device cpu"
            )
        if options.threads is not None and options.threads < 1:
            raise EdgebenchError(f"--threads must be >= 1 (got {options.threads})")
        self.artifact: ExportArtifact | None = None
        self._model: WhisperLiteRT | HybridCtcLiteRT | None = None
        self._meta: dict[str, Any] = {}
        self._size = 0
        self._source = ""

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def threads(self) -> int:
        if self.options.threads:
            return self.options.threads
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1

    def export_options(self) -> Any:
        from edgebench.agent.export.base import ExportOptions

        return ExportOptions(
            target="tflite",
            quantize="int8" if self.options.precision == "int8" else None,
            weights=self.options.weights,
            seed=self.options.seed,
        )

    def prepare(self) -> None:
        from edgebench.agent.export.cache import export_in_child
        from edgebench.agent.runtimes.base import import_if_installed

        export_in_child(self.spec.name, self.export_options())
        with contextlib.suppress(MissingExtraError):  # load() says which extra to install
            interpreter_class()
        if self.spec.family == "whisper":
            import_if_installed("tokenizers")

    def load(self) -> None:
        standalone = standalone_tflite(self.options.weights)
        if standalone is not None:
            self._use_standalone(standalone)
            return
        from edgebench.agent.export.pipeline import export_model

        # The cache, an export --weights names, or one copied from a controller (see export.cache).
        self._use_artifact(export_model(self.spec, self.export_options()))

    def _use_artifact(self, artifact: ExportArtifact) -> None:
        from edgebench.agent.export.tflite import LAYOUT

        meta = artifact.meta
        if meta.get("layout") != LAYOUT:
            raise EdgebenchError(
                f"{artifact.directory} holds graphs of another edgebench export layout: delete it and "
                "export again"
            )
        self.artifact = artifact
        if not artifact.verified:
            self.warnings.append(artifact.trust_note())
        outputs = meta.get("outputs", {})
        graphs = {
            name: Graph(path, self.threads, outputs.get(name))
            for name, path in artifact.files.items()
            if Path(path).suffix == ".tflite"
        }
        if self.spec.family == "whisper":
            self._model = WhisperLiteRT(
                meta, artifact.files, graphs, self.options.language, self.options.task
            )
        else:
            self._model = HybridCtcLiteRT(meta, graphs["encoder_ctc"], self.spec.name)
        self._meta = meta
        self._size = artifact.size_bytes
        self._source = artifact.describe_source()
        if not artifact.reused and "total_s" in meta:
            self.warnings.append(
                f"exported to .tflite now ({meta['total_s']} s), cached in {artifact.directory}"
            )

    def _use_standalone(self, path: Path) -> None:
        if self.spec.family == "whisper":
            raise EdgebenchError(
                f"{self.spec.name} on litert needs its encoder and decoder graphs: pass the directory "
                f"written by `edgebench-agent export --model {self.spec.name} --to tflite`, not the single "
                f"file {path}"
            )
        graph = Graph(path, self.threads, ["ctc_log_probs", "out_lengths"])
        if set(graph.inputs) != {"features", "lengths"}:
            raise EdgebenchError(
                f"{path} has inputs {', '.join(sorted(graph.inputs))}: a hybrid encoder+CTC .tflite takes "
                "'features' [1, n_mels, frames] and 'lengths' [1]"
            )
        from edgebench.models.hybrid.vocab import Vocabulary

        _, n_mels, frames = graph.input_shapes["features"]
        if n_mels != self.spec.n_mels:
            raise EdgebenchError(f"{path} takes {n_mels} mel bins, {self.spec.name} uses {self.spec.n_mels}")
        vocab = graph.output_shapes["ctc_log_probs"][-1]
        meta = {
            "n_mels": n_mels,
            "window_frames": frames,
            "min_frames": 1,
            "tokens": Vocabulary.default(vocab).tokens,
            "default_ctc_weight": 1.0,
            "params": {},
        }
        self._model = HybridCtcLiteRT(meta, graph, self.spec.name)
        self._meta = meta
        self._size = path.stat().st_size
        self._source = f"{path} (standalone .tflite)"
        self.warnings.append(
            f"standalone {path.name}: vocabulary and training state unknown, WER not reported"
        )

    def _require(self) -> WhisperLiteRT | HybridCtcLiteRT:
        if self._model is None:
            raise RuntimeError("session not loaded")
        return self._model

    def model_report(self) -> ModelReport:
        self._require()
        meta = self._meta
        artifact = self.artifact
        return ModelReport(
            name=self.spec.name,
            family=self.spec.family,
            trained=bool(meta.get("trained", False)),
            weights_source=self._source,
            params={k: int(v) for k, v in meta.get("params", {}).items()},
            size_on_disk_bytes=self._size,
            weights_identity=artifact.weights_identity if artifact else None,
            weights_verified=artifact.verified if artifact else None,
        )

    def features(self, audio: list[np.ndarray]) -> Features:
        return self._require().features(audio, self.frontend)

    def forward(self, feats: Features) -> Any:
        return self._require().forward(feats)

    def prefill(self, feats: Features) -> DecodeState:
        return self._require().prefill(feats)

    def decode(self, state: DecodeState, n_tokens: int) -> DecodeState:
        return self._require().decode(state, n_tokens, force=True)

    def transcribe(self, feats: Features, ctc_weight: float | None) -> list[str]:
        return self._require().transcribe(feats, ctc_weight)

    def detected_languages(self) -> Any:
        return getattr(self._model, "detected", None)

    def transcribe_tokens(self, feats: Features) -> list[list[int]]:
        """Greedy Whisper token ids per item (end-of-text excluded), for cross-runtime equivalence checks."""
        model = self._require()
        if not isinstance(model, WhisperLiteRT):
            raise EdgebenchError(f"{self.spec.name} is not a Whisper model: it has no greedy token ids")
        return model.transcribe_tokens(feats)

    def close(self) -> None:
        self._model = None


# -- Whisper ---------------------------------------------------------------------------------------


class _Item:
    """One batch item's decoder state: cross K/V from the encoder, the self-attention cache, its length."""

    def __init__(self, cross_k: np.ndarray, cross_v: np.ndarray, cache_shape: tuple[int, ...]) -> None:
        self.cross_k = cross_k
        self.cross_v = cross_v
        self.self_k = np.zeros(cache_shape, dtype=np.float32)
        self.self_v = np.zeros(cache_shape, dtype=np.float32)
        self.position = 0


class WhisperLiteRT(ExportedWhisperDecoding):
    """Whisper over ``encoder`` + ``decoder`` graphs (see :mod:`edgebench.agent.export.tflite_modules`),
    decoded by the same :class:`~edgebench.models.whisper.decoding.GreedyDecoder` as every other runtime."""

    def __init__(
        self, meta: dict[str, Any], files: dict[str, Path], graphs: dict[str, Graph], language: str, task: str
    ) -> None:
        from edgebench.models.whisper.decoding import DecodingConfig, GreedyDecoder

        self.meta = meta
        self.encoder = graphs["encoder"]
        self.decoder_graph = graphs["decoder"]
        self.decoding = DecodingConfig.from_pretrained_dir(
            Path(files["generation_config"]).parent, language=language, task=task
        )
        self.decoder = GreedyDecoder(self.decoding)
        self.tokenizer = load_tokenizer_file(Path(files["tokenizer"]), "litert")
        self.cache_shape = self.decoder_graph.input_shapes["self_k"]
        self.max_positions = int(meta["max_positions"])
        # Whose cross K/V are in the decoder's inputs now: a weak reference, so that the last utterance's
        # K/V (two encoder outputs) are freed when its decoding ends, not kept until the next one's exist.
        self._current: weakref.ref[_Item] | None = None

    def features(self, audio: list[np.ndarray], frontend: Any) -> Features:
        if not audio:
            raise EdgebenchError("no audio to compute features for")
        shape = (int(self.meta["n_mels"]), int(self.meta["frames"]))
        mels = [np.asarray(frontend(a, pad_to_samples=WHISPER_SAMPLES), dtype=np.float32) for a in audio]
        for mel in mels:
            if mel.shape != shape:
                raise EdgebenchError(f"Whisper needs log-mel features of shape {shape}, got {mel.shape}")
        values = np.ascontiguousarray(np.stack(mels))
        return Features(values=values, lengths=np.full(len(mels), shape[1], dtype=np.int64))  # type: ignore[arg-type]

    def _start(self, feats: Features) -> list[_Item]:
        items = []
        for i in range(feats.values.shape[0]):
            out = self.encoder.run(input_features=np.ascontiguousarray(feats.values[i : i + 1]))
            items.append(_Item(out["cross_k"], out["cross_v"], self.cache_shape))
        return items

    def _step(self, item: _Item, token: int) -> np.ndarray:
        """Feed one token of one item; returns its logits ``[1, V]`` and appends its K/V to the cache."""
        if item.position >= self.max_positions:
            raise EdgebenchError(f"Whisper's decoder has {self.max_positions} positions: all are used")
        g = self.decoder_graph
        if self._current is None or self._current() is not item:
            g.set("cross_k", item.cross_k)
            g.set("cross_v", item.cross_v)
            self._current = weakref.ref(item)
        g.set("token", np.array([[token]], dtype=np.int32))
        g.set("position", np.array([item.position], dtype=np.int32))
        g.set("self_k", item.self_k)
        g.set("self_v", item.self_v)
        g.invoke()
        item.self_k[:, :, :, item.position] = g.get("new_k")[:, :, :, 0]
        item.self_v[:, :, :, item.position] = g.get("new_v")[:, :, :, 0]
        item.position += 1
        return g.get("logits")

    def _step_batch(self, items: list[_Item], tokens: np.ndarray) -> np.ndarray:
        return np.concatenate([self._step(item, int(t)) for item, t in zip(items, tokens, strict=True)])

    def _prompt(self, items: list[_Item], detect: bool = False) -> np.ndarray:
        """Feed each item's prompt token by token; logits of the last. ``detect``: the language is
        chosen from the logits after ``<|startoftranscript|>`` (``--language auto``)."""
        sot = np.full(len(items), self.decoding.prompt[0])
        start = 0
        if detect:
            rows, self.detected = self.decoder.choose_prompts(
                len(items), lambda: self._step_batch(items, sot)
            )
            start = 1 if self.detected is not None else 0
        else:
            rows = np.tile(np.asarray(self.decoding.prompt), (len(items), 1))
        logits = None
        for column in range(start, rows.shape[1]):
            logits = self._step_batch(items, rows[:, column])
        assert logits is not None
        return logits

    def forward(self, feats: Features) -> np.ndarray:
        """Encoder + decoder over the prompt: last-position logits ``[B, V]`` (with ``--language auto``
        English holds the language's place, as on torch: detection is part of :meth:`prefill`)."""
        return self._prompt(self._start(feats))

    def prefill(self, feats: Features) -> DecodeState:
        items = self._start(feats)
        tokens, finished = self.decoder.select(self._prompt(items, detect=True), step=0)
        return DecodeState(tokens=tokens[:, None], data={"items": items, "finished": finished})  # type: ignore[arg-type]

    def _next_logits(self, data: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
        return self._step_batch(data["items"], tokens)


# -- hybrid CTC/attention (encoder + CTC head) -----------------------------------------------------


class HybridCtcLiteRT:
    """Encoder + CTC head over a fixed window of frames, CTC best-path decoding (``ctc_weight=1``)."""

    def __init__(self, meta: dict[str, Any], graph: Graph, model_name: str) -> None:
        from edgebench.models.hybrid.vocab import Vocabulary

        self.meta = meta
        self.graph = graph
        self.name = model_name
        self.vocab = Vocabulary(meta["tokens"])
        self.window = int(meta["window_frames"])
        self.min_frames = int(meta["min_frames"])

    def _unsupported(self, what: str) -> EdgebenchError:
        return EdgebenchError(
            f"{self.name} on litert is exported as encoder + CTC head only: {what} needs the attention "
            "decoder, which runs on the torch runtime (use --runtime torch, or --ctc-weight 1 on litert)"
        )

    def features(self, audio: list[np.ndarray], frontend: Any) -> Features:
        if not audio:
            raise EdgebenchError("No audio given: the batch is empty")
        mats = [np.asarray(frontend(a), dtype=np.float32) for a in audio]
        lengths = [m.shape[1] for m in mats]
        if min(lengths) < self.min_frames:
            raise EdgebenchError(
                f"{self.name} needs at least {self.min_frames} feature frames; got an item with "
                f"{min(lengths)}"
            )
        if max(lengths) > self.window:
            raise EdgebenchError(
                f"{self.name} on litert takes at most {self.window} frames ({self.window / 100:g} s, the "
                f"exported window); got an item with {max(lengths)}: use shorter audio or --runtime torch"
            )
        values = np.zeros((len(mats), int(self.meta["n_mels"]), self.window), dtype=np.float32)
        for i, m in enumerate(mats):
            values[i, :, : m.shape[1]] = m
        return Features(values=values, lengths=np.asarray(lengths, dtype=np.int32))  # type: ignore[arg-type]

    def _encode(self, feats: Features) -> tuple[np.ndarray, np.ndarray]:
        probs, lengths = [], []
        for i in range(feats.values.shape[0]):
            out = self.graph.run(
                features=np.ascontiguousarray(feats.values[i : i + 1]),
                lengths=np.asarray(feats.lengths[i : i + 1], dtype=np.int32),
            )
            probs.append(out["ctc_log_probs"])
            lengths.append(out["out_lengths"])
        return np.concatenate(probs), np.concatenate(lengths)

    def forward(self, feats: Features) -> np.ndarray:
        """Encoder + CTC head (the attention decoder is not part of the export)."""
        return self._encode(feats)[0]

    def prefill(self, feats: Features) -> DecodeState:
        raise self._unsupported("the generate scenario")

    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        raise self._unsupported("the generate scenario")

    def transcribe(self, feats: Features, ctc_weight: float | None) -> list[str]:
        weight = float(self.meta["default_ctc_weight"]) if ctc_weight is None else float(ctc_weight)
        if weight != 1.0:
            raise self._unsupported(f"ctc_weight {weight:g} (joint or attention decoding)")
        log_probs, lengths = self._encode(feats)
        texts = []
        for row, n in zip(log_probs.argmax(-1), lengths.tolist(), strict=True):
            ids: list[int] = []
            prev = None
            for tok in row[:n].tolist():
                if tok != prev and tok != self.vocab.blank:
                    ids.append(tok)
                prev = tok
            texts.append(self.vocab.ids_to_text(ids))
        return texts
