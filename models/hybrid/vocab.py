"""Token list of a hybrid model: id <-> token, and token ids -> text.

ESPnet's convention is kept so that trained token lists load unchanged: ``<blank>`` is id 0 (the CTC
blank) and the last id is ``<sos/eos>`` (shared start and end symbol). Between them come the real tokens:
characters (``<space>`` for a word boundary) or SentencePiece pieces (``▁`` marks a word start).

Untrained models still need *some* token list to turn ids into strings; :meth:`Vocabulary.default` builds
a character list (``<blank> <unk> <space> ' a … z``) and pads it with ``<tok_N>`` up to the vocabulary
size. For vocabularies smaller than 31 the character list is truncated (the 27-symbol LSTM drops
``w``–``z``): harmless, because such text is never scored (the result is flagged untrained).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgebench.agent.errors import EdgebenchError

BLANK = "<blank>"
UNK = "<unk>"
SPACE = "<space>"
SOS_EOS = "<sos/eos>"
_SP_WORD_START = "\u2581"  # SentencePiece's "▁"

_DEFAULT_CORE = [BLANK, UNK, SPACE, "'", *string.ascii_lowercase]


class Vocabulary:
    """An ordered token list with ESPnet's special ids (blank = 0, sos/eos = last)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if len(tokens) < 2:
            raise EdgebenchError(
                f"A token list needs at least <blank> and <sos/eos>; got {len(tokens)} tokens"
            )
        self.tokens: list[str] = list(tokens)

    @property
    def blank(self) -> int:
        return 0

    @property
    def sos_eos(self) -> int:
        return len(self.tokens) - 1

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def default(cls, vocab_size: int) -> Vocabulary:
        """Character list padded with ``<tok_N>`` (N = id) to ``vocab_size``; last id is ``<sos/eos>``."""
        if vocab_size < 2:
            raise EdgebenchError(f"vocab_size must be at least 2, got {vocab_size}")
        core = _DEFAULT_CORE[: vocab_size - 1]
        pads = [f"<tok_{i}>" for i in range(len(core), vocab_size - 1)]
        return cls([*core, *pads, SOS_EOS])

    @classmethod
    def from_file(cls, path: str | Path, vocab_size: int) -> Vocabulary:
        """Load an ESPnet ``tokens.txt``/``token_list`` (one token per line, in id order).

        The length must equal the model's output size: a mismatched list would decode every id to the
        wrong token without any error, which is worse than failing.
        """
        p = Path(path)
        if not p.is_file():
            raise EdgebenchError(f"Token list file not found: {p}")
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgebenchError(f"Cannot read token list {p}: {exc}") from exc
        tokens = [line.rstrip("\r\n") for line in lines if line.strip()]
        if len(tokens) != vocab_size:
            raise EdgebenchError(
                f"Token list {p} has {len(tokens)} tokens but the model outputs {vocab_size}; "
                "use the token list the weights were trained with"
            )
        return cls(tokens)

    def ids_to_text(self, ids: Iterable[int]) -> str:
        """Concatenate tokens, mapping ``<space>``/``▁`` to spaces and dropping blank and sos/eos.

        Whitespace is collapsed so that character and SentencePiece models produce comparable strings.
        """
        pieces: list[str] = []
        for i in ids:
            i = int(i)
            if i == self.blank or i == self.sos_eos:
                continue
            tok = self.tokens[i] if 0 <= i < len(self.tokens) else UNK
            if tok == SPACE:
                pieces.append(" ")
            else:
                pieces.append(tok.replace(_SP_WORD_START, " "))
        return " ".join("".join(pieces).split())
