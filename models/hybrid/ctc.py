"""CTC: the output head, greedy best-path decoding, and the CTC prefix scorer for joint decoding.

The prefix scorer is ESPnet's ``CTCPrefixScore`` (Watanabe et al. 2017, "Hybrid CTC/attention"),
vectorised over hypotheses and candidate tokens. For a prefix ``g`` it tracks, for every frame ``t``,

* ``r_n[t]`` — log P(the first ``t+1`` frames collapse to ``g`` and frame ``t`` emits ``g``'s last token),
* ``r_b[t]`` — log P(the first ``t+1`` frames collapse to ``g`` and frame ``t`` is blank),

and scores a one-token extension ``h = g + c`` by the *prefix probability* ``psi(h)`` = log P(the CTC
output starts with ``h``) = logsumexp over t of P(``g`` done by frame t-1, ``c`` first emitted at t). For
``c = <eos>`` the score is log P(output is exactly ``g``) = ``logaddexp(r_n[T-1], r_b[T-1])``. The beam
search adds ``psi(h) - psi(g)`` per step, so a finished hypothesis' CTC score is its full CTC probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class CtcHead(nn.Module):
    """``ctc_lo``: Linear(encoder dim, vocab) followed by log-softmax (ESPnet ``CTC``)."""

    def __init__(self, eprojs: int, vocab_size: int) -> None:
        super().__init__()
        self.ctc_lo = nn.Linear(eprojs, vocab_size)

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        """``[B, T, eprojs]`` -> log-probabilities ``[B, T, V]``."""
        return torch.log_softmax(self.ctc_lo(enc), dim=-1)


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: argmax per frame, collapse repeats, drop blanks (per item, valid frames only).

    This is the standard CTC-only decoding: one argmax per frame, no search, so it is the cheapest way a
    hybrid model can produce text.
    """
    best = log_probs.argmax(dim=-1).cpu()
    out: list[list[int]] = []
    for row, n in zip(best.tolist(), lengths.cpu().tolist(), strict=True):
        ids: list[int] = []
        prev = None
        for tok in row[:n]:
            if tok != prev and tok != blank:
                ids.append(tok)
            prev = tok
        out.append(ids)
    return out


@dataclass
class CtcState:
    """Prefix-scorer state of ``n`` hypotheses."""

    r: np.ndarray
    """``[T, 2, n]`` float32 forward variables (``r_n``, ``r_b``) per frame and hypothesis."""
    psi: torch.Tensor
    """``[n]`` float32 prefix log-probabilities, on the device of the beam search's scores."""

    def index_select(self, index: torch.Tensor) -> CtcState:
        """Keep/duplicate hypotheses: entry ``i`` of the result is entry ``index[i]``."""
        return CtcState(r=self.r[:, :, index.cpu().numpy()], psi=self.psi.index_select(0, index))


class CtcPrefixScorer:
    """Prefix scores of one utterance for a batch of hypotheses (ESPnet ``CTCPrefixScore``).

    The frame recursion is inherently sequential (``T`` steps per decoding step). As in ESPnet's
    ``CTCPrefixScore`` it runs in numpy float32 on the CPU: each step touches only ``n·K`` numbers, where a
    numpy call costs about a microsecond and a torch dispatch several (and a GPU kernel launch more), so
    the measured joint-decoding time reflects the algorithm rather than per-op overhead. Float32 also
    whatever the model dtype: the variables are sums over up to ``T`` frames and float16 loses too much.
    """

    def __init__(self, log_probs: torch.Tensor, blank: int, eos: int) -> None:
        """``log_probs``: ``[T, V]`` CTC log-probabilities of one utterance (valid frames only)."""
        self.device = log_probs.device
        self.x = log_probs.detach().to(device="cpu", dtype=torch.float32).numpy()
        self.length, self.vocab_size = self.x.shape
        self.blank = blank
        self.eos = eos

    def initial_state(self) -> CtcState:
        """State of the empty prefix (``<sos>`` only): all-blank paths, ``psi = log 1 = 0``."""
        r = np.full((self.length, 2, 1), -np.inf, dtype=np.float32)
        r[:, 1, 0] = np.cumsum(self.x[:, self.blank])
        return CtcState(r=r, psi=torch.zeros(1, dtype=torch.float32, device=self.device))

    def score(
        self, ys: torch.Tensor, state: CtcState, cands: torch.Tensor
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Prefix log-probabilities of ``ys[i] + cands[i, k]``.

        ``ys``: ``[n, L]`` hypotheses starting with ``<sos>``; ``cands``: ``[n, K]`` token ids. Returns
        (``psi [n, K]`` on the scorer's device, forward variables ``[T, 2, n*K]`` for :meth:`select`).
        """
        n, k = cands.shape
        t_len = self.length
        out_len = ys.size(1) - 1  # tokens after <sos>
        flat = cands.reshape(-1).cpu().numpy()  # column j = hypothesis j // K, candidate j % K
        xs = self.x[:, flat]  # [T, N]
        r_prev = state.r[:, :, np.repeat(np.arange(n), k)]  # [T, 2, N]

        r = np.full((t_len, 2, n * k), -np.inf, dtype=np.float32)
        if out_len == 0:
            r[0, 0] = xs[0]
        r_sum = np.logaddexp(r_prev[:, 0], r_prev[:, 1])  # [T, N]: g complete at or before t
        if out_len > 0:
            # Repeating the last token needs a blank in between: only the blank-ending paths of g count.
            same = flat == np.repeat(ys[:, -1].cpu().numpy(), k)
            log_phi = np.where(same, r_prev[:, 1], r_sum)
        else:
            log_phi = r_sum

        # A prefix of L tokens cannot be complete before frame L-1; clamped so over-long prefixes (more
        # tokens than frames) just get probability 0 instead of indexing past the end.
        start = min(max(out_len, 1), t_len)
        x_blank = self.x[:, self.blank]
        for t in range(start, t_len):
            prev_n, prev_b, r_n, r_b = r[t - 1, 0], r[t - 1, 1], r[t, 0], r[t, 1]
            np.logaddexp(prev_n, log_phi[t - 1], out=r_n)
            r_n += xs[t]
            np.logaddexp(prev_n, prev_b, out=r_b)
            r_b += x_blank[t]
        terms = np.concatenate([r[start - 1, 0][None], log_phi[start - 1 : t_len - 1] + xs[start:t_len]])
        psi = np.logaddexp.reduce(terms, axis=0)
        psi = np.where(flat == self.eos, r_sum[-1], psi)
        psi[flat == self.blank] = -np.inf
        return torch.from_numpy(psi.reshape(n, k)).to(self.device), r

    @staticmethod
    def select(r: np.ndarray, psi: torch.Tensor, flat_index: torch.Tensor) -> CtcState:
        """State of the chosen extensions; ``flat_index`` indexes ``psi.view(-1)`` / the columns of ``r``."""
        return CtcState(r=r[:, :, flat_index.cpu().numpy()], psi=psi.reshape(-1).index_select(0, flat_index))
