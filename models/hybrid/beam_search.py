"""One-pass joint CTC/attention beam search (ESPnet ``BeamSearch`` with ``decoder`` and ``ctc`` scorers).

Every hypothesis ``h`` carries the score ``(1-λ)·log p_att(h) + λ·log psi_ctc(h)``, where ``psi_ctc`` is the
CTC prefix probability (see :mod:`.ctc`). Per step:

1. the attention decoder scores all tokens for every running hypothesis (batched over hypotheses);
2. if both scorers are on, a *pre-beam* keeps the ``int(1.5·beam)`` best attention tokens per hypothesis
   and only those are CTC-scored (the prefix scorer costs ``O(T)`` per candidate, the decoder does not);
   with ``λ = 1`` the decoder is skipped and CTC scores the whole vocabulary (ESPnet: no pre-beam key);
3. the best ``beam`` extensions over all hypotheses survive; those ending in ``<eos>`` are finished.

Decoding stops when no hypothesis is running, at ``max_len`` tokens (ESPnet ``maxlenratio=0``: the
encoder length; still-running hypotheses then get ``<eos>`` appended), or when ESPnet's ``end_detect``
finds the recently finished hypotheses hopeless compared to the best finished one.

The decoder is reached only through :class:`StepScorer`, so the Transformer and the LSTM decoder (and the
hand-made distributions in the tests) share this search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from edgebench.models.hybrid.ctc import CtcPrefixScorer

END_DETECT_M = 3
END_DETECT_D = math.log(math.exp(-10))  # ESPnet's D_end: finished hypotheses this much worse are hopeless


class StepScorer(Protocol):
    """The attention decoder of one utterance, as the beam search sees it."""

    def init_state(self) -> Any:
        """Decoder state for the single initial hypothesis ``[<sos>]``."""

    def score(self, ys: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Next-token log-probabilities ``[n, V]`` for hypotheses ``ys [n, L]``, and the new state."""

    def select_state(self, state: Any, index: torch.Tensor) -> Any:
        """Keep/duplicate hypotheses: row ``i`` of the result is row ``index[i]`` of ``state``."""


class AttentionScorer:
    """Adapts a decoder module (``init_state``/``step``/``select_state``) and one utterance's encoder
    output to :class:`StepScorer`; the memory is expanded (a view, no copy) to the number of hypotheses."""

    def __init__(self, decoder: Any, memory: torch.Tensor, memory_mask: torch.Tensor) -> None:
        """``memory``: ``[1, T, D]``; ``memory_mask``: bool ``[1, 1, T]``."""
        self.decoder = decoder
        self.memory = memory
        self.memory_mask = memory_mask

    def init_state(self) -> Any:
        return self.decoder.init_state(self.memory, self.memory_mask)

    def score(self, ys: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        n = ys.size(0)
        memory = self.memory.expand(n, -1, -1)
        mask = self.memory_mask.expand(n, -1, -1)
        logits, state = self.decoder.step(ys, memory, mask, state)
        return torch.log_softmax(logits.float(), dim=-1), state

    def select_state(self, state: Any, index: torch.Tensor) -> Any:
        return self.decoder.select_state(state, index)


@dataclass(frozen=True)
class Hypothesis:
    """A finished hypothesis."""

    tokens: tuple[int, ...]
    """Output tokens without ``<sos>``/``<eos>``."""
    score: float
    """``(1-λ)·log p_att + λ·log p_ctc`` of the whole sequence including ``<eos>``."""
    length: int
    """ESPnet's ``len(yseq)`` (``<sos>`` and ``<eos>`` included), used by :func:`end_detect`."""


def end_detect(ended: list[Hypothesis], i: int) -> bool:
    """ESPnet's ``end_detect``: stop when, for each of the last ``M`` output lengths, the best hypothesis
    that finished with that length is more than ``D_end`` worse than the best finished overall."""
    if not ended:
        return False
    best = max(h.score for h in ended)
    count = 0
    for m in range(END_DETECT_M):
        same_length = [h.score for h in ended if h.length == i - m]
        if same_length and max(same_length) - best < END_DETECT_D:
            count += 1
    return count == END_DETECT_M


def beam_search(
    decoder: StepScorer | None,
    ctc_log_probs: torch.Tensor | None,
    *,
    sos: int,
    eos: int,
    blank: int = 0,
    beam_size: int,
    ctc_weight: float,
    max_len: int,
    pre_beam_ratio: float = 1.5,
) -> list[Hypothesis]:
    """Joint CTC/attention beam search for one utterance; returns finished hypotheses, best first.

    ``ctc_weight`` (λ) 0 uses only ``decoder``, 1 only ``ctc_log_probs`` (``[T, V]``); in between both are
    needed. ``beam_size=1`` with λ=0 is greedy attention decoding.
    """
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    use_att = ctc_weight < 1.0
    use_ctc = ctc_weight > 0.0
    if use_att and decoder is None:
        raise ValueError("ctc_weight < 1 needs the attention decoder")
    if use_ctc and ctc_log_probs is None:
        raise ValueError("ctc_weight > 0 needs CTC log-probabilities")

    scorer = CtcPrefixScorer(ctc_log_probs, blank, eos) if use_ctc else None  # type: ignore[arg-type]
    device = ctc_log_probs.device if ctc_log_probs is not None else None
    ys = torch.full((1, 1), sos, dtype=torch.long, device=device)
    scores = torch.zeros(1, dtype=torch.float32, device=device)
    dec_state = decoder.init_state() if use_att else None  # type: ignore[union-attr]
    ctc_state = scorer.initial_state() if scorer is not None else None
    pre_beam = int(pre_beam_ratio * beam_size)
    ended: list[Hypothesis] = []

    for i in range(max_len):
        n = ys.size(0)
        if use_att:
            att, new_dec_state = decoder.score(ys, dec_state)  # type: ignore[union-attr]
            ys = ys.to(att.device)
            scores = scores.to(att.device)
            weighted = (1.0 - ctc_weight) * att
        if scorer is not None:
            vocab = scorer.vocab_size
            if use_att and pre_beam < vocab:
                cands = att.topk(pre_beam, dim=1).indices
            else:
                cands = torch.arange(vocab, device=ys.device).expand(n, vocab)
            psi, r = scorer.score(ys, ctc_state, cands)  # type: ignore[arg-type]
            cand_scores = ctc_weight * (psi - ctc_state.psi.unsqueeze(1))  # type: ignore[union-attr]
            if use_att:
                cand_scores = cand_scores + weighted.gather(1, cands)
        else:
            cands = torch.arange(att.size(1), device=att.device).expand(n, -1)
            cand_scores = weighted

        total = (scores.unsqueeze(1) + cand_scores).reshape(-1)
        top_scores, top_flat = total.topk(min(beam_size, total.numel()))
        finite = torch.isfinite(top_scores)
        if not bool(finite.all()):  # impossible extensions (e.g. CTC prefix longer than the input)
            top_scores, top_flat = top_scores[finite], top_flat[finite]
            if top_flat.numel() == 0:
                break
        hyp_index = torch.div(top_flat, cands.size(1), rounding_mode="floor")
        tokens = cands.reshape(-1).index_select(0, top_flat)
        ys = torch.cat([ys.index_select(0, hyp_index), tokens.unsqueeze(1)], dim=1)
        scores = top_scores
        if use_att:
            dec_state = decoder.select_state(new_dec_state, hyp_index)  # type: ignore[union-attr]
        if scorer is not None:
            ctc_state = scorer.select(r, psi, top_flat)

        is_end = tokens == eos
        if i == max_len - 1:
            is_end = torch.ones_like(is_end)  # ESPnet appends <eos> to whatever is still running
        for j in is_end.nonzero().flatten().tolist():
            seq = ys[j, 1:].tolist()
            if seq and seq[-1] == eos:
                seq = seq[:-1]
            ended.append(Hypothesis(tokens=tuple(seq), score=float(scores[j]), length=len(seq) + 2))
        running = (~is_end).nonzero().flatten()
        if running.numel() == 0:
            break
        if running.numel() < is_end.numel():
            ys, scores = ys.index_select(0, running), scores.index_select(0, running)
            if use_att:
                dec_state = decoder.select_state(dec_state, running)  # type: ignore[union-attr]
            if ctc_state is not None:
                ctc_state = ctc_state.index_select(running)
        if end_detect(ended, i):
            break

    if not ended:  # only when every extension was impossible: return what was running
        ended = [
            Hypothesis(tokens=tuple(row[1:]), score=float(s), length=len(row) + 1)
            for row, s in zip(ys.tolist(), scores.tolist(), strict=True)
        ]
    return sorted(ended, key=lambda h: h.score, reverse=True)
