"""WER/CER with jiwer after one documented text normaliser.

Normaliser (applied to references and hypotheses alike): Unicode NFC (an accent typed as a combining
mark and a precomposed letter are the same letter); case-folded (lower case, German ß as ss); typographic
apostrophes as ASCII; hyphens and slashes become spaces; punctuation and symbols removed (Unicode
categories P and S; apostrophes inside words kept, so "don't" and "l'homme" stay one word; Spanish ¿ ¡
and French guillemets go; combining marks such as Devanagari vowel signs stay); whitespace collapsed.
Accents are kept: "é" for "e" is a spelling error in French or Spanish. It deliberately does not spell
out numbers or map British/American spellings: the built-in sets avoid digits, and a silent rewrite
would hide real recognition errors. For English text v2 gives v1's result (v1 kept underscores).
"""

from __future__ import annotations

import re
import unicodedata

NORMALIZER_NAME = "nfc+casefold+punct-strip+ws (edgebench v2)"

_SEPARATORS = re.compile(r"[-/–—]")
_LONE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).casefold().translate(_APOSTROPHES)
    text = _SEPARATORS.sub(" ", text)
    # punctuation and symbols go (Unicode P* and S*); letters, digits and combining marks stay (Indic
    # vowel signs are marks: removing them, as "not \\w" did, would cut words in pieces)
    text = "".join(c for c in text if c == "'" or unicodedata.category(c)[0] not in "PS")
    text = _LONE_APOSTROPHE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def wer_cer(references: list[str], hypotheses: list[str]) -> tuple[float, float]:
    """Corpus-level WER and CER (errors summed over all utterances, divided by reference length)."""
    import jiwer

    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    if any(not r for r in refs):
        raise ValueError("a reference transcript is empty after normalisation")
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))
