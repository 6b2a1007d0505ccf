"""Whisper in PyTorch (Hugging Face ``WhisperForConditionalGeneration``) behind ``TorchAsrModel``.

Only the torch runtime imports this module, so torch and transformers are imported at the top.

Decoding does not use ``model.generate``: HF's generate adds its own logits processors, timestamp logic
and stopping criteria that change between releases, and the benchmark needs prefill and per-token decode
as separately timed calls. Instead the encoder, the decoder (with its KV cache) and ``proj_out`` are
called directly, and tokens are chosen by :mod:`edgebench.models.whisper.decoding`, the same greedy
rules an ONNX Runtime backend reuses, matching CTranslate2 token for token.

Device and dtype follow the module: inputs are moved to wherever ``conv1`` lives and cast to its dtype,
so the runtime may ``.to("cuda").half()`` the module freely. Dynamic int8 quantization
(``torch.ao.quantization.quantize_dynamic(module, {nn.Linear})``) works as is: it replaces every Linear,
including ``proj_out``, whose weight is tied to the token embedding. The quantized ``proj_out`` keeps an
int8 *copy* of that weight while ``embed_tokens`` stays float, so the tie is broken but both still compute
the right thing (see :func:`quantizable_modules` to keep ``proj_out`` in float instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edgebench.agent.errors import EdgebenchError
from edgebench.models.base import DecodeState, Features, ModelInfo, TorchAsrModel
from edgebench.models.spec import ModelSpec
from edgebench.models.whisper.decoding import DecodingConfig, GreedyDecoder, LanguageGuess
from edgebench.models.whisper.weights import resolve_whisper_weights

if TYPE_CHECKING:
    from edgebench.models.frontend.logmel import LogMelFrontend

N_SAMPLES = 480_000
"""Whisper always sees 30 s of audio (16 kHz): shorter input is zero-padded, longer is trimmed."""
N_FRAMES = 3000


def _unique_numel(params: Any, seen: set[int]) -> int:
    """Elements of the parameters not counted yet; ``seen`` holds ids of counted Parameters, so a weight
    shared by two modules (tied embeddings) is counted once."""
    total = 0
    for param in params:
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def quantizable_modules(model: nn.Module, include_proj_out: bool = True) -> set[str]:
    """Qualified names of the ``nn.Linear`` modules to give ``quantize_dynamic`` as its qconfig spec.

    By default every Linear, including the tied ``proj_out`` (verified to transcribe the same as float).
    ``include_proj_out=False`` keeps the output projection in float, preserving the tie with the token
    embedding, for runtimes that need ``proj_out.weight is embed_tokens.weight``.
    """
    names = {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    if not include_proj_out:
        names = {name for name in names if not name.endswith("proj_out")}
    return names


class WhisperTorchModel(TorchAsrModel):
    """A loaded Whisper checkpoint with greedy decoding (see the module docstring)."""

    def __init__(
        self,
        spec: ModelSpec,
        module: nn.Module,
        decoding: DecodingConfig,
        info: ModelInfo,
        tokenizer: Any | None = None,
        weights_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.module = module
        self.info = info
        self.decoding = decoding
        self.decoder = GreedyDecoder(decoding)
        self.tokenizer = tokenizer
        self.weights_path = weights_path
        self.detected: list[LanguageGuess] | None = None
        """The language of each item of the last prefill, where it was detected (``--language auto``)."""
        # Counted once at load: after quantize_dynamic the packed int8 weights are no longer Parameters.
        self._param_counts = self._count_params()

    # -- facts -----------------------------------------------------------------------------------------

    def _count_params(self) -> dict[str, int]:
        seen: set[int] = set()
        whisper = self.module.model
        encoder = _unique_numel(whisper.encoder.parameters(), seen)
        # The decoder includes the token embedding; proj_out shares that tensor (tied), adding nothing.
        decoder = _unique_numel(whisper.decoder.parameters(), seen)
        decoder += _unique_numel(self.module.proj_out.parameters(), seen)
        rest = _unique_numel(self.module.parameters(), seen)
        return {"encoder": encoder, "decoder": decoder + rest, "total": encoder + decoder + rest}

    def param_counts(self) -> dict[str, int]:
        """Encoder/decoder/total parameters as loaded. The tied output projection (``proj_out``, the same
        tensor as the decoder's token embedding) is counted once, in ``decoder``; the encoder's fixed
        sinusoidal position table is a Parameter in HF Whisper and is counted in ``encoder``."""
        return dict(self._param_counts)

    @property
    def prompt(self) -> tuple[int, ...]:
        return self.decoding.prompt

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        # conv1 is never quantized, so it tells the truth after .half(), .to(device) and quantize_dynamic.
        weight = self.module.model.encoder.conv1.weight
        return weight.device, weight.dtype

    def _prompt_ids(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.tensor([list(self.prompt)] * batch, dtype=torch.long, device=device)

    # -- TorchAsrModel ---------------------------------------------------------------------------------

    def features(self, audio: list[np.ndarray], frontend: LogMelFrontend) -> Features:
        """Log-mel of each waveform padded/trimmed to 30 s: ``[B, n_mels, 3000]`` float32 on the CPU."""
        if not audio:
            raise EdgebenchError("no audio to compute features for")
        mels = [np.asarray(frontend(a, pad_to_samples=N_SAMPLES), dtype=np.float32) for a in audio]
        for mel in mels:
            if mel.shape != (self.spec.n_mels, N_FRAMES):
                raise EdgebenchError(
                    f"{self.spec.name} needs log-mel features of shape ({self.spec.n_mels}, {N_FRAMES}), "
                    f"the front end gave {mel.shape}"
                )
        values = torch.from_numpy(np.stack(mels))
        return Features(values=values, lengths=torch.full((len(mels),), N_FRAMES, dtype=torch.long))

    def _inputs(self, feats: Features) -> torch.Tensor:
        device, dtype = self._device_dtype()
        return feats.values.to(device=device, dtype=dtype)

    @torch.inference_mode()
    def forward(self, feats: Features) -> torch.Tensor:
        """Encoder + decoder over the prompt in one full-model call (no cache): ``[B, len(prompt), V]``.
        With ``--language auto`` the prompt holds English in the language's place: the arithmetic does
        not depend on which language token it is; detection is part of :meth:`prefill`."""
        x = self._inputs(feats)
        out = self.module(
            input_features=x, decoder_input_ids=self._prompt_ids(x.shape[0], x.device), use_cache=False
        )
        return out.logits

    def _decoder_step(self, state: DecodeState, input_ids: torch.Tensor) -> torch.Tensor:
        """Run the decoder on ``input_ids`` with the cache in ``state``; logits of the last position.

        ``proj_out`` is applied to the last position only: the other positions' logits are never used,
        and the 51864 x d_model projection dominates a tiny decoder's cost.
        """
        decoder = self.module.model.decoder
        kw = _cache_keyword(decoder)
        out = decoder(
            input_ids=input_ids,
            encoder_hidden_states=state.data["encoder_hidden_states"],
            use_cache=True,
            **{kw: state.data.get("kv_cache")},
        )
        state.data["kv_cache"] = getattr(out, kw)
        return self.module.proj_out(out.last_hidden_state[:, -1, :])

    @torch.inference_mode()
    def prefill(self, feats: Features) -> DecodeState:
        """Encoder, then the decoder over the prompt (filling the KV caches), then the first token.
        With ``--language auto`` the decoder first takes ``<|startoftranscript|>`` alone, whose logits
        choose each item's language, then the rest of the prompt (the cache holds the first token)."""
        x = self._inputs(feats)
        encoder_hidden_states = self.module.model.encoder(x).last_hidden_state
        state = DecodeState(
            tokens=torch.empty((x.shape[0], 0), dtype=torch.long, device=x.device),
            data={"encoder_hidden_states": encoder_hidden_states, "kv_cache": None},
        )
        sot = self._prompt_ids(x.shape[0], x.device)[:, :1]
        rows, self.detected = self.decoder.choose_prompts(x.shape[0], lambda: self._decoder_step(state, sot))
        rest = rows[:, 1:] if self.detected is not None else rows  # SOT is in the cache once detected
        logits = self._decoder_step(state, torch.as_tensor(rest, device=x.device))
        tokens, finished = self.decoder.select(logits, step=0)
        state.tokens = tokens[:, None]
        state.data["finished"] = finished
        return state

    @torch.inference_mode()
    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        """``n_tokens`` more greedy steps with the KV cache.

        With ``force`` end-of-text is suppressed, so exactly ``n_tokens`` are appended (an error if that
        would pass Whisper's 448 positions). Without it, items that emitted end-of-text are padded with
        it, and decoding stops early once every item has finished or the position limit is reached.
        """
        generated = state.tokens.shape[1]
        room = self.decoding.max_new_tokens - generated
        if force and n_tokens > room:
            raise EdgebenchError(
                f"cannot decode {n_tokens} more tokens: Whisper's decoder has {self.decoding.max_length} "
                f"positions, {len(self.prompt)} prompt + {generated} generated are used"
            )
        finished = state.data["finished"]
        new: list[torch.Tensor] = []
        tokens = state.tokens[:, -1]
        for _ in range(min(n_tokens, room)):
            if not force and bool(finished.all()):
                break
            logits = self._decoder_step(state, tokens[:, None])
            tokens, finished = self.decoder.select(logits, generated + len(new), finished, force)
            new.append(tokens)
        if new:
            state.tokens = torch.cat([state.tokens, torch.stack(new, dim=1)], dim=1)
        state.data["finished"] = finished
        return state

    def transcribe_tokens(self, feats: Features) -> list[list[int]]:
        """Greedy token ids per item until end-of-text (excluded) or 448 positions, like CTranslate2's
        ``sequences_ids``."""
        state = self.prefill(feats)
        state = self.decode(state, self.decoding.max_new_tokens, force=False)
        return self.decoder.strip_eos(state.tokens.cpu())

    def transcribe(self, feats: Features, ctc_weight: float | None = None) -> list[str]:
        """Greedy transcription of each item; special and timestamp tokens removed, text stripped."""
        if ctc_weight is not None:
            raise EdgebenchError("ctc_weight applies only to hybrid CTC/attention models")
        tokenizer = self._require_tokenizer()
        return [
            tokenizer.decode(self.decoder.text_tokens(ids), skip_special_tokens=True).strip()
            for ids in self.transcribe_tokens(feats)
        ]

    def _require_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise EdgebenchError(
                f"{self.weights_path} has no tokenizer files (tokenizer.json or vocab.json + merges.txt): "
                "transcription needs them; use a complete Hugging Face Whisper directory"
            )
        return self.tokenizer


def _cache_keyword(decoder: Any) -> str:
    """The decoder's KV-cache argument (and output): ``cache`` from transformers 5, ``past_key_values``
    before (5 still takes the old name, with a FutureWarning on every call)."""
    import inspect

    params = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _load_tokenizer(path: Path) -> Any | None:
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
        return None
    from transformers import WhisperTokenizerFast

    return WhisperTokenizerFast.from_pretrained(path)


def load_whisper(
    spec: ModelSpec,
    weights_dir: str | Path | None = None,
    *,
    language: str = "auto",
    task: str = "transcribe",
) -> WhisperTorchModel:
    """Resolve the weights (see :func:`~edgebench.models.whisper.weights.resolve_whisper_weights`) and load
    them in float32 with SDPA attention, in eval mode on the CPU (the runtime moves/casts it).
    ``language``/``task`` make the prompt (:meth:`DecodingConfig.from_generation_config`)."""
    from transformers import WhisperForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # edgebench shows its own progress; this one would garble it
    source = resolve_whisper_weights(spec, weights_dir)
    module = WhisperForConditionalGeneration.from_pretrained(
        source.path, attn_implementation="sdpa", dtype=torch.float32
    )
    module.eval()
    n_mels = module.config.num_mel_bins
    if n_mels != spec.n_mels:
        raise EdgebenchError(
            f"weights in {source.path} expect {n_mels} mel bins but {spec.name} is defined with "
            f"{spec.n_mels}: they are not weights for this model"
        )
    decoding = DecodingConfig.from_pretrained_dir(source.path, language=language, task=task)
    source_label = str(source.path) if source.source == "local-dir" else source.source
    info = ModelInfo(trained=True, weights_source=source_label, size_on_disk_bytes=source.size_on_disk_bytes)
    return WhisperTorchModel(
        spec, module, decoding, info, tokenizer=_load_tokenizer(source.path), weights_path=source.path
    )
