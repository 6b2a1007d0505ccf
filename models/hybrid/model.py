"""Hybrid CTC/attention ASR models (Conformer or BLSTMP encoder) behind the :class:`TorchAsrModel` contract.

:func:`load_hybrid` builds the module for a :class:`ModelSpec` and either loads a state dict (trained) or
keeps seeded random weights (untrained, still meaningful for latency/memory/energy). What each contract
operation does for these models:

* ``forward`` — encoder, CTC log-softmax, attention decoder teacher-forced over the one-token prompt
  ``<sos>``; returns the decoder logits ``[B, 1, V]``. The CTC head is computed (and timed) but not returned.
* ``prefill`` — encoder + decoder on ``<sos>``; the first token is chosen greedily with ``<sos/eos>``
  suppressed, so a generate run always produces the tokens it asked for.
* ``decode`` — further greedy steps of the attention decoder (incremental; ``force`` suppresses EOS).
* ``transcribe`` — ``ctc_weight`` 1: CTC best path; 0: attention beam search; in between: joint one-pass
  CTC/attention beam search (ESPnet). The encoder runs batched, the search one utterance at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edgebench.agent.errors import EdgebenchError
from edgebench.models.base import DecodeState, Features, ModelInfo, TorchAsrModel
from edgebench.models.hybrid.beam_search import AttentionScorer, beam_search
from edgebench.models.hybrid.configs import (
    CONFORMER_VARIANTS,
    LSTM_VARIANTS,
    ConformerHybridConfig,
    LstmHybridConfig,
)
from edgebench.models.hybrid.conformer import ConformerEncoder
from edgebench.models.hybrid.ctc import CtcHead, ctc_greedy
from edgebench.models.hybrid.rnn_decoder import RnnDecoder
from edgebench.models.hybrid.rnn_encoder import BlstmpEncoder
from edgebench.models.hybrid.transformer_decoder import TransformerDecoder
from edgebench.models.hybrid.vocab import Vocabulary

if TYPE_CHECKING:
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec

QUANTIZABLE: frozenset[type[nn.Module]] = frozenset({nn.Linear, nn.LSTM, nn.LSTMCell})
"""Module types to pass to ``torch.ao.quantization.quantize_dynamic`` (int8). All three convert and run:
no forward path reads a Linear's ``.weight``, the encoder LSTMs take packed sequences (which the dynamic
LSTM supports) and the decoder's ``LSTMCell`` has a dynamic int8 counterpart. Convolutions, LayerNorm,
BatchNorm and embeddings stay float (dynamic quantization has no kernels for them)."""

HybridConfig = ConformerHybridConfig | LstmHybridConfig


class HybridModule(nn.Module):
    """The whole network: ``encoder``, ``ctc`` head and attention ``decoder`` (ESPnet's top-level names)."""

    def __init__(self, config: HybridConfig) -> None:
        super().__init__()
        self.encoder: ConformerEncoder | BlstmpEncoder
        self.decoder: TransformerDecoder | RnnDecoder
        if isinstance(config, ConformerHybridConfig):
            self.encoder = ConformerEncoder(config)
            self.decoder = TransformerDecoder(config)
        else:
            self.encoder = BlstmpEncoder(config)
            self.decoder = RnnDecoder(config)
        self.ctc = CtcHead(self.encoder.output_size, config.vocab_size)

    def encode(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: ``[B, T, n_mels]`` -> (output ``[B, T', D]``, lengths ``[B]``, mask ``[B, 1, T']``)."""
        enc, enc_lens = self.encoder(x, lengths)
        mask = (torch.arange(enc.size(1), device=enc.device).unsqueeze(0) < enc_lens.unsqueeze(1)).unsqueeze(
            1
        )
        return enc, enc_lens, mask

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, ys_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder, CTC log-probs, teacher-forced decoder logits -> (ctc, decoder, encoder lengths)."""
        enc, enc_lens, mask = self.encode(x, lengths)
        return self.ctc(enc), self.decoder(ys_in, enc, mask), enc_lens


def component_counts(module: HybridModule) -> dict[str, int]:
    """Parameters of ``encoder``, ``ctc_head``, ``attention_decoder`` and their ``total``."""
    counts = {
        "encoder": sum(p.numel() for p in module.encoder.parameters()),
        "ctc_head": sum(p.numel() for p in module.ctc.parameters()),
        "attention_decoder": sum(p.numel() for p in module.decoder.parameters()),
    }
    counts["total"] = sum(counts.values())
    return counts


class HybridTorchModel(TorchAsrModel):
    """A loaded hybrid CTC/attention model (see the module docstring for the operation semantics)."""

    def __init__(
        self,
        spec: ModelSpec,
        config: HybridConfig,
        module: HybridModule,
        vocab: Vocabulary,
        info: ModelInfo,
        beam_size: int = 4,
    ) -> None:
        self.spec = spec
        self.config = config
        self.module = module
        self.vocab = vocab
        self.info = info
        self.beam_size = beam_size
        # Counted once at load: after int8 dynamic quantization the packed weights are no longer
        # ``parameters()``, but the architecture (what these numbers describe) is unchanged.
        self._counts = component_counts(module)

    # -- helpers -----------------------------------------------------------------------------------------

    @property
    def sos_eos(self) -> int:
        return self.vocab.sos_eos

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        """Where and in which float type the module computes (its first floating parameter)."""
        for p in self.module.parameters():
            if p.is_floating_point():
                return p.device, p.dtype
        return torch.device("cpu"), torch.float32

    @torch.inference_mode()
    def encode(self, feats: Features) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched encoder on the module's device/dtype -> (output ``[B, T', D]``, lengths ``[B]``, mask
        ``[B, 1, T']``). Public because it is the shared first half of every operation (and tests compare
        batched against per-item encoder outputs with it)."""
        device, dtype = self._device_dtype()
        lengths = feats.lengths.to(device=device, dtype=torch.long)
        min_frames = self.module.encoder.min_frames
        if lengths.numel() == 0:
            raise EdgebenchError("Empty batch: nothing to encode")
        if int(lengths.min()) < min_frames:
            raise EdgebenchError(
                f"{self.spec.name} needs at least {min_frames} feature frames ({min_frames * 10} ms of "
                f"audio); got an item with {int(lengths.min())}"
            )
        x = feats.values.to(device=device, dtype=dtype).transpose(1, 2)
        return self.module.encode(x, lengths)

    def _greedy_step(
        self, ys: torch.Tensor, data: dict[str, Any], force: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batched greedy decoder step -> (chosen tokens ``[B]``, new decoder state)."""
        logits, dec_state = self.module.decoder.step(
            ys, data["memory"], data["memory_mask"], data["dec_state"]
        )
        if force:
            logits[:, self.sos_eos] = float("-inf")
        return logits.argmax(dim=-1), dec_state

    # -- TorchAsrModel -----------------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        return dict(self._counts)

    def features(self, audio: list[np.ndarray], frontend: LogMelFrontend) -> Features:
        """Log-mel per waveform, zero-padded to the longest; lengths are the true frame counts."""
        if not audio:
            raise EdgebenchError("No audio given: the batch is empty")
        mats = [np.asarray(frontend(a), dtype=np.float32) for a in audio]
        n_mels = self.config.n_mels
        for m in mats:
            if m.ndim != 2 or m.shape[0] != n_mels:
                raise EdgebenchError(
                    f"{self.spec.name} needs {n_mels}-bin log-mel features [n_mels, frames]; the front end "
                    f"returned shape {m.shape}"
                )
        lengths = [m.shape[1] for m in mats]
        values = np.zeros((len(mats), n_mels, max(lengths)), dtype=np.float32)
        for i, m in enumerate(mats):
            values[i, :, : m.shape[1]] = m
        return Features(values=torch.from_numpy(values), lengths=torch.tensor(lengths, dtype=torch.long))

    @torch.inference_mode()
    def forward(self, feats: Features) -> torch.Tensor:
        """Encoder + CTC head + decoder over the prompt ``<sos>``; returns decoder logits ``[B, 1, V]``."""
        enc, _, mask = self.encode(feats)
        self.module.ctc(enc)  # part of the measured work, as in a hybrid model's real forward
        ys = torch.full((enc.size(0), 1), self.sos_eos, dtype=torch.long, device=enc.device)
        return self.module.decoder(ys, enc, mask)

    @torch.inference_mode()
    def prefill(self, feats: Features) -> DecodeState:
        enc, enc_lens, mask = self.encode(feats)
        ys = torch.full((enc.size(0), 1), self.sos_eos, dtype=torch.long, device=enc.device)
        data: dict[str, Any] = {
            "memory": enc,
            "memory_mask": mask,
            "memory_lengths": enc_lens,
            "dec_state": self.module.decoder.init_state(enc, mask),
        }
        tok, data["dec_state"] = self._greedy_step(ys, data, force=True)
        ys = torch.cat([ys, tok.unsqueeze(1)], dim=1)
        data["ys"] = ys
        data["finished"] = torch.zeros(enc.size(0), dtype=torch.bool, device=enc.device)
        return DecodeState(tokens=ys[:, 1:], data=data)

    @torch.inference_mode()
    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        """``n_tokens`` greedy steps. Without ``force`` an item that emitted ``<sos/eos>`` keeps emitting it,
        and decoding stops early once every item has (so fewer than ``n_tokens`` columns may come back)."""
        if n_tokens < 0:
            raise EdgebenchError(f"n_tokens must be >= 0, got {n_tokens}")
        data = dict(state.data)
        ys: torch.Tensor = data["ys"]
        finished: torch.Tensor = data["finished"]
        eos = self.sos_eos
        for _ in range(n_tokens):
            if not force and bool(finished.all()):
                break
            tok, data["dec_state"] = self._greedy_step(ys, data, force)
            if not force:
                tok = tok.masked_fill(finished, eos)
                finished = finished | (tok == eos)
            ys = torch.cat([ys, tok.unsqueeze(1)], dim=1)
        data["ys"] = ys
        data["finished"] = finished
        return DecodeState(tokens=ys[:, 1:], data=data)

    @torch.inference_mode()
    def transcribe(self, feats: Features, ctc_weight: float | None = None) -> list[str]:
        """Text per item; ``ctc_weight=None`` uses the variant's default (0.3, ESPnet's LibriSpeech value)."""
        weight = self.config.ctc_weight if ctc_weight is None else float(ctc_weight)
        if not (0.0 <= weight <= 1.0) or math.isnan(weight):
            raise EdgebenchError(
                f"ctc_weight must be between 0 (attention only) and 1 (CTC only), got {ctc_weight}"
            )
        enc, enc_lens, _ = self.encode(feats)
        if weight == 1.0:
            ids = ctc_greedy(self.module.ctc(enc), enc_lens, blank=self.vocab.blank)
            return [self.vocab.ids_to_text(seq) for seq in ids]
        ctc_log_probs = self.module.ctc(enc) if weight > 0.0 else None
        texts = []
        for b, length in enumerate(enc_lens.tolist()):
            memory = enc[b : b + 1, :length]
            mask = torch.ones(1, 1, length, dtype=torch.bool, device=enc.device)
            hyps = beam_search(
                AttentionScorer(self.module.decoder, memory, mask),
                None if ctc_log_probs is None else ctc_log_probs[b, :length],
                sos=self.sos_eos,
                eos=self.sos_eos,
                blank=self.vocab.blank,
                beam_size=self.beam_size,
                ctc_weight=weight,
                max_len=length,
            )
            texts.append(self.vocab.ids_to_text(hyps[0].tokens) if hyps else "")
        return texts


# -- loading ---------------------------------------------------------------------------------------------


def resolve_config(spec: ModelSpec) -> HybridConfig:
    """The variant config a spec names, with actionable errors for anything inconsistent."""
    if spec.family != "hybrid":
        raise EdgebenchError(f"{spec.name} is a {spec.family} model, not a hybrid CTC/attention model")
    encoder = spec.options.get("encoder")
    tables: dict[str, dict[str, ConformerHybridConfig] | dict[str, LstmHybridConfig]] = {
        "conformer": CONFORMER_VARIANTS,
        "lstm": LSTM_VARIANTS,
    }
    if encoder not in tables:
        raise EdgebenchError(
            f"{spec.name}: options['encoder'] must be 'conformer' or 'lstm', got {encoder!r}"
        )
    table = tables[str(encoder)]
    if spec.variant not in table:
        raise EdgebenchError(
            f"{spec.name}: unknown {encoder} variant {spec.variant!r}; choose one of: {', '.join(table)}"
        )
    config = table[str(spec.variant)]
    if spec.n_mels != config.n_mels:
        raise EdgebenchError(
            f"{spec.name}: spec says {spec.n_mels} mel bins but the model takes {config.n_mels}"
        )
    return config


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", … (+{len(items) - n} more)" if len(items) > n else "")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EdgebenchError(f"Hybrid model weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, not a torch file at all …
        raise EdgebenchError(f"Cannot read hybrid model weights {path}: {exc}") from exc
    # Training checkpoints often wrap the weights; accept the two common wrappers.
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgebenchError(f"{path} is not a PyTorch state dict (a mapping of parameter names to tensors)")
    return dict(obj)


def _check_state_dict(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: Path, name: str
) -> None:
    """Refuse weights that do not fit exactly, naming the first offending keys (a partial load would
    silently mix trained and random weights and produce plausible-looking garbage)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches, file vs model ({_first(mismatched)})")
    if problems:
        raise EdgebenchError(
            f"Weights {path} do not fit {name}: "
            + "; ".join(problems)
            + ". Use weights trained for this variant."
        )


def load_hybrid(
    spec: ModelSpec,
    state_dict_path: str | Path | None = None,
    token_list_path: str | Path | None = None,
    seed: int = 0,
    beam_size: int = 4,
) -> HybridTorchModel:
    """Build the hybrid model ``spec`` names, with trained weights from ``state_dict_path`` or seeded random
    weights (``torch.manual_seed(seed)`` inside ``fork_rng``: same seed, same model; global RNG untouched).

    ``token_list_path`` is an ESPnet token list (one token per line); without it a placeholder character
    list is used (fine for timing; texts are then not meaningful unless the weights match it).
    """
    config = resolve_config(spec)
    if beam_size < 1:
        raise EdgebenchError(f"beam_size must be >= 1, got {beam_size}")
    vocab = (
        Vocabulary.default(config.vocab_size)
        if token_list_path is None
        else Vocabulary.from_file(token_list_path, config.vocab_size)
    )
    if state_dict_path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = HybridModule(config)
        info = ModelInfo(trained=False, weights_source=f"random(seed={seed})")
    else:
        path = Path(state_dict_path)
        state = _read_state_dict(path)
        # Built on the meta device and filled by assignment: no time spent on a random init that would be
        # overwritten, and no second copy of the weights in memory (matters on a 1 GB board).
        with torch.device("meta"):
            module = HybridModule(config)
        _check_state_dict(state, module.state_dict(), path, spec.name)
        state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
        module.load_state_dict(state, assign=True)
        info = ModelInfo(trained=True, weights_source=str(path), size_on_disk_bytes=path.stat().st_size)
    module.eval()
    return HybridTorchModel(spec, config, module, vocab, info, beam_size=beam_size)
