"""WER/CER with jiwer after one documented text normaliser.

Normaliser (applied to references and hypotheses alike): lower-case; hyphens and slashes become spaces;
punctuation removed (apostrophes inside words kept, so "don't" stays one word); whitespace collapsed.
It deliberately does not spell out numbers or map British/American spellings: the built-in set avoids
digits, and a silent rewrite would hide real recognition errors.
"""

from __future__ import annotations

import re

NORMALIZER_NAME = "lower+punct-strip+ws (edgebench v1)"

_SEPARATORS = re.compile(r"[-/–—]")
_PUNCT = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    text = _SEPARATORS.sub(" ", text.lower())
    text = _PUNCT.sub("", text)
    return _SPACES.sub(" ", text).strip()


def wer_cer(references: list[str], hypotheses: list[str]) -> tuple[float, float]:
    """Corpus-level WER and CER (errors summed over all utterances, divided by reference length)."""
    import jiwer

    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    if any(not r for r in refs):
        raise ValueError("a reference transcript is empty after normalisation")
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))
