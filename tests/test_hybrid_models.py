"""Hybrid CTC/attention models: sizes, decoding algorithms and the TorchAsrModel contract.

Real inference runs on the ``tiny``/``small`` variants; the ``libri`` variants are only built to check
their parameter counts against the seed document.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgebench.agent.errors import EdgebenchError
from edgebench.models.base import Features
from edgebench.models.hybrid.attention import rel_shift
from edgebench.models.hybrid.beam_search import Hypothesis, beam_search, end_detect
from edgebench.models.hybrid.configs import (
    CONFORMER_VARIANTS,
    LSTM_VARIANTS,
    approx_param_breakdown,
    approx_params,
)
from edgebench.models.hybrid.ctc import CtcPrefixScorer, ctc_greedy
from edgebench.models.hybrid.model import QUANTIZABLE, HybridTorchModel, load_hybrid
from edgebench.models.hybrid.vocab import Vocabulary
from edgebench.models.spec import ModelSpec

ENCODERS = ("conformer", "lstm")
ALL_VARIANTS = [("conformer", v) for v in CONFORMER_VARIANTS] + [("lstm", v) for v in LSTM_VARIANTS]

SEED_COUNTS = {  # from the seed document (ESPnet LibriSpeech models)
    "conformer": {"total": 116_146_960, "ctc_head": 2_565_000, "attention_decoder": 30_350_216},
    "lstm": {"total": 8_248_145, "ctc_head": 8_667, "attention_decoder": 1_459_318},
}
ENCODER_COUNTS = {"conformer": 83_231_744, "lstm": 6_780_160}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Decoding is many tiny ops; on a shared CI box two intra-op threads spin-wait far more than they
    compute (measured 20x slower under load), so the module runs single-threaded and restores after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_spec(encoder: str, variant: str) -> ModelSpec:
    return ModelSpec(
        name=f"{encoder}-hybrid:{variant}",
        family="hybrid",
        description="test",
        n_mels=80,
        approx_params=0,
        variant=variant,
        options={"encoder": encoder},
    )


_MODELS: dict[tuple[str, str, int], HybridTorchModel] = {}


def model(encoder: str, variant: str = "tiny", seed: int = 0) -> HybridTorchModel:
    """Cached random-weight models (tests must not mutate them)."""
    key = (encoder, variant, seed)
    if key not in _MODELS:
        _MODELS[key] = load_hybrid(make_spec(encoder, variant), seed=seed)
    return _MODELS[key]


def random_feats(lengths: list[int], seed: int = 0, n_mels: int = 80) -> Features:
    rng = np.random.default_rng(seed)
    values = np.zeros((len(lengths), n_mels, max(lengths)), dtype=np.float32)
    for i, n in enumerate(lengths):
        values[i, :, :n] = rng.standard_normal((n_mels, n)).astype(np.float32)
    return Features(values=torch.from_numpy(values), lengths=torch.tensor(lengths))


# --- sizes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ENCODERS)
def test_libri_counts_match_seed_document(encoder: str) -> None:
    counts = model(encoder, "libri").param_counts()
    for key, value in SEED_COUNTS[encoder].items():
        assert counts[key] == value, key
    assert counts["encoder"] == ENCODER_COUNTS[encoder]


@pytest.mark.parametrize(("encoder", "variant"), ALL_VARIANTS)
def test_approx_params_is_exact_and_components_sum(encoder: str, variant: str) -> None:
    m = model(encoder, variant)
    counts = m.param_counts()
    assert counts["total"] == counts["encoder"] + counts["ctc_head"] + counts["attention_decoder"]
    assert counts["total"] == sum(p.numel() for p in m.module.parameters())
    config = (CONFORMER_VARIANTS if encoder == "conformer" else LSTM_VARIANTS)[variant]
    assert approx_param_breakdown(config) == counts
    assert approx_params(config) == counts["total"]


def test_tiny_variants_are_a_few_hundred_k() -> None:
    for table in (CONFORMER_VARIANTS, LSTM_VARIANTS):
        assert 100_000 < approx_params(table["tiny"]) < 500_000


def test_configs_module_does_not_import_torch() -> None:
    code = (
        "import sys, edgebench.models.hybrid, edgebench.models.hybrid.configs as c; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "print(c.approx_params(c.LSTM_VARIANTS['libri']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "8248145"


# --- loading ------------------------------------------------------------------------------------------


def test_random_weights_are_labelled_and_deterministic() -> None:
    feats = random_feats([200])
    rng_before = torch.get_rng_state()
    a = load_hybrid(make_spec("conformer", "tiny"), seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before), "global RNG must be untouched"
    b = load_hybrid(make_spec("conformer", "tiny"), seed=0)
    c = load_hybrid(make_spec("conformer", "tiny"), seed=1)
    assert not a.info.trained and a.info.weights_source == "random(seed=0)"
    assert torch.equal(a.forward(feats), b.forward(feats))
    assert not torch.allclose(a.forward(feats), c.forward(feats))
    assert a.transcribe(feats, 0.3) == b.transcribe(feats, 0.3)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_state_dict_round_trip(encoder: str, tmp_path: Path) -> None:
    src = load_hybrid(make_spec(encoder, "tiny"), seed=3)
    path = tmp_path / "weights.pt"
    torch.save(src.module.state_dict(), path)
    loaded = load_hybrid(make_spec(encoder, "tiny"), state_dict_path=path)
    assert loaded.info.trained and loaded.info.weights_source == str(path)
    assert loaded.info.size_on_disk_bytes == path.stat().st_size
    feats = random_feats([180, 150], seed=5)
    assert torch.equal(src.forward(feats), loaded.forward(feats))
    assert src.transcribe(feats, 0.5) == loaded.transcribe(feats, 0.5)


def test_bad_state_dicts_are_refused(tmp_path: Path) -> None:
    spec = make_spec("conformer", "tiny")
    with pytest.raises(EdgebenchError, match="not found"):
        load_hybrid(spec, state_dict_path=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EdgebenchError, match="Cannot read"):
        load_hybrid(spec, state_dict_path=garbage)
    wrong_keys = tmp_path / "lstm.pt"
    torch.save(model("lstm").module.state_dict(), wrong_keys)
    with pytest.raises(EdgebenchError, match=r"missing keys.*unexpected keys"):
        load_hybrid(spec, state_dict_path=wrong_keys)
    wrong_shapes = tmp_path / "renamed.pt"
    state = dict(model("conformer").module.state_dict())
    state["ctc.ctc_lo.weight"] = torch.zeros(7, 64)
    torch.save(state, wrong_shapes)
    with pytest.raises(
        EdgebenchError, match=r"1 shape mismatches.*ctc\.ctc_lo\.weight \(7, 64\) vs \(32, 64\)"
    ):
        load_hybrid(spec, state_dict_path=wrong_shapes)


def test_spec_errors() -> None:
    with pytest.raises(EdgebenchError, match="variant"):
        load_hybrid(make_spec("conformer", "huge"))
    with pytest.raises(EdgebenchError, match="encoder"):
        load_hybrid(make_spec("gru", "tiny"))
    whisper = ModelSpec(name="whisper-tiny", family="whisper", description="", n_mels=80, approx_params=0)
    with pytest.raises(EdgebenchError, match="not a hybrid"):
        load_hybrid(whisper)


def test_token_list_file(tmp_path: Path) -> None:
    tokens = ["<blank>", "<unk>", "<space>", *"abcdefghijklmnopqrstuvwxyz'", "<x>", "<sos/eos>"]
    assert len(tokens) == 32
    path = tmp_path / "tokens.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    m = load_hybrid(make_spec("conformer", "tiny"), token_list_path=path)
    assert m.vocab.tokens == tokens
    assert m.vocab.ids_to_text([3, 2, 4, 0, 31]) == "a b"
    with pytest.raises(EdgebenchError, match="has 32 tokens but the model outputs 27"):
        load_hybrid(make_spec("lstm", "tiny"), token_list_path=path)


def test_default_vocabulary() -> None:
    v = Vocabulary.default(40)
    assert v.tokens[:5] == ["<blank>", "<unk>", "<space>", "'", "a"] and v.tokens[-1] == "<sos/eos>"
    assert v.tokens[30] == "<tok_30>" and len(v) == 40
    assert v.ids_to_text([4, 4, 2, 5, 0, 39]) == "aa b"
    assert len(Vocabulary.default(27)) == 27 and Vocabulary.default(27).sos_eos == 26
    assert (
        Vocabulary(["<blank>", "\u2581he", "llo", "\u2581world", "<sos/eos>"]).ids_to_text([1, 2, 3])
        == "hello world"
    )


# --- contract operations ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ENCODERS)
def test_forward_prefill_and_forced_decode(encoder: str) -> None:
    m = model(encoder)
    feats = random_feats([300, 220])
    logits = m.forward(feats)
    assert logits.shape == (2, 1, m.config.vocab_size)
    state = m.prefill(feats)
    assert state.tokens.shape == (2, 1)
    assert not (state.tokens == m.sos_eos).any()
    for n in (1, 7, 50):
        out = m.decode(state, n, force=True)
        assert out.tokens.shape == (2, 1 + n)
        assert not (out.tokens == m.sos_eos).any()
        assert torch.equal(out.tokens[:, :1], state.tokens)
    # Continuing a decode equals decoding in one go (the incremental state is carried correctly).
    two_steps = m.decode(m.decode(state, 3), 4)
    assert torch.equal(two_steps.tokens, m.decode(state, 7).tokens)


def test_unforced_decode_pads_with_eos_after_the_end() -> None:
    m = model("conformer")
    out = m.decode(m.prefill(random_feats([300])), 50, force=False)
    tokens = out.tokens[0].tolist()
    assert 1 <= len(tokens) <= 51
    if m.sos_eos in tokens:
        first = tokens.index(m.sos_eos)
        assert all(t == m.sos_eos for t in tokens[first:])


@pytest.mark.parametrize("encoder", ENCODERS)
def test_incremental_decoder_matches_teacher_forcing(encoder: str) -> None:
    m = model(encoder)
    enc, _, mask = m.encode(random_feats([260, 200]))
    ys = torch.randint(0, m.config.vocab_size - 1, (2, 6), generator=torch.Generator().manual_seed(0))
    ys[:, 0] = m.sos_eos
    with torch.inference_mode():
        full = m.module.decoder(ys, enc, mask)
        state = m.module.decoder.init_state(enc, mask)
        for i in range(ys.size(1)):
            step, state = m.module.decoder.step(ys[:, : i + 1], enc, mask, state)
            torch.testing.assert_close(step, full[:, i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_transcribe_weights(encoder: str) -> None:
    m = model(encoder)
    feats = random_feats([250, 180])
    for weight in (0.0, 0.3, 1.0, None):
        texts = m.transcribe(feats, weight)
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(EdgebenchError, match="ctc_weight"):
            m.transcribe(feats, bad)


def test_transcribe_small_variant_on_5s() -> None:
    m = model("conformer", "small")
    texts = m.transcribe(random_feats([500]), 0.3)
    assert len(texts) == 1


@pytest.mark.parametrize("encoder", ENCODERS)
def test_batch_matches_single_items(encoder: str) -> None:
    m = model(encoder)
    lengths = [310, 120, 227]
    feats = random_feats(lengths, seed=2)
    enc, enc_lens, mask = m.encode(feats)
    for i, n in enumerate(lengths):
        single = Features(values=feats.values[i : i + 1, :, :n], lengths=torch.tensor([n]))
        enc_i, lens_i, _ = m.encode(single)
        assert int(enc_lens[i]) == int(lens_i[0]) == enc_i.size(1)
        torch.testing.assert_close(enc[i, : int(lens_i[0])], enc_i[0], atol=1e-4, rtol=1e-4)
        assert mask[i, 0].sum() == lens_i[0]
    assert len(m.transcribe(feats, 0.3)) == 3


def test_too_short_input_is_an_edgebench_error() -> None:
    with pytest.raises(EdgebenchError, match="at least 7 feature frames"):
        model("conformer").forward(random_feats([5]))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_int8_dynamic_quantization(encoder: str) -> None:
    m = load_hybrid(make_spec(encoder, "tiny"))
    float_logits = m.forward(random_feats([200]))
    m.module = torch.ao.quantization.quantize_dynamic(m.module, set(QUANTIZABLE), dtype=torch.qint8)
    assert not any(type(mod) is torch.nn.Linear for mod in m.module.modules())
    if encoder == "lstm":
        assert not any(type(mod) in (torch.nn.LSTM, torch.nn.LSTMCell) for mod in m.module.modules())
    feats = random_feats([200])
    q_logits = m.forward(feats)
    assert q_logits.shape == float_logits.shape and torch.isfinite(q_logits).all()
    assert m.decode(m.prefill(feats), 5).tokens.shape == (1, 6)
    for weight in (0.0, 0.3, 1.0):
        assert isinstance(m.transcribe(feats, weight)[0], str)
    assert m.param_counts()["total"] == approx_params(m.config)


def test_features_pads_to_longest() -> None:
    m = model("lstm")
    rng = np.random.default_rng(0)

    def frontend(audio: np.ndarray) -> np.ndarray:
        return rng.standard_normal((80, len(audio) // 160)).astype(np.float32)

    feats = m.features([np.zeros(16000, np.float32), np.zeros(8000, np.float32)], frontend)  # type: ignore[arg-type]
    assert feats.values.shape == (2, 80, 100) and feats.values.dtype == torch.float32
    assert feats.lengths.tolist() == [100, 50]
    assert float(feats.values[1, :, 50:].abs().sum()) == 0.0
    with pytest.raises(EdgebenchError, match="80-bin"):
        m.features([np.zeros(16000, np.float32)], lambda a: np.zeros((128, 10), np.float32))  # type: ignore[arg-type]


def test_end_to_end_with_logmel_frontend() -> None:
    from edgebench.models.frontend import logmel

    m = model("conformer")
    audio = [
        np.random.default_rng(i).standard_normal(16000 * s).astype(np.float32) * 0.1
        for i, s in ((0, 2), (1, 1))
    ]
    feats = m.features(audio, logmel.LogMelFrontend(n_mels=80))
    assert feats.values.shape[:2] == (2, 80)
    assert len(m.transcribe(feats)) == 2


# --- decoding algorithms ------------------------------------------------------------------------------


def test_ctc_greedy_collapses_repeats_and_drops_blanks() -> None:
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    log_probs = torch.full((2, len(path), 4), -5.0)
    for t, tok in enumerate(path):
        log_probs[0, t, tok] = -0.1
        log_probs[1, t, tok] = -0.1
    assert ctc_greedy(log_probs, torch.tensor([9, 5])) == [[1, 1, 2, 3], [1, 1, 2]]


def test_rel_shift_maps_relative_positions() -> None:
    t = 5
    # Score column k of row i encodes relative position T-1-k; after the shift [i, j] must be i - j.
    rel = torch.arange(t - 1, -t, -1, dtype=torch.float32)
    x = rel.expand(1, 1, t, 2 * t - 1).clone()
    shifted = rel_shift(x)[0, 0]
    expected = torch.arange(t).unsqueeze(1) - torch.arange(t).unsqueeze(0)
    assert torch.equal(shifted, expected.float())


def _brute_force(probs: np.ndarray) -> dict[tuple[int, ...], float]:
    """P(collapsed output == seq) for every output sequence, by enumerating all V^T alignments."""
    t_len, vocab = probs.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=t_len):
        p = math.prod(probs[t, s] for t, s in enumerate(path))
        collapsed = tuple(s for i, s in enumerate(path) if s != 0 and (i == 0 or path[i - 1] != s))
        out[collapsed] = out.get(collapsed, 0.0) + p
    return out


def test_ctc_prefix_scorer_equals_brute_force() -> None:
    """psi(g + c) = P(CTC output starts with g + c) and psi(g + eos) = P(output == g), checked against an
    enumeration of all 4^4 alignments (blank + 3 symbols, T=4) for every prefix up to length 4."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=4)  # [T=4, V=4], id 0 = blank
    exact = _brute_force(probs)
    eos = 4
    log_probs = torch.full((4, 5), float("-inf"))  # eos column: never emitted by CTC
    log_probs[:, :4] = torch.from_numpy(np.log(probs)).float()
    scorer = CtcPrefixScorer(log_probs, blank=0, eos=eos)

    def prefix_prob(prefix: tuple[int, ...]) -> float:
        return sum(p for seq, p in exact.items() if seq[: len(prefix)] == prefix)

    checked = 0
    for length in range(0, 4):
        for g in itertools.product((1, 2, 3), repeat=length):
            state = scorer.initial_state()
            ys = torch.tensor([[eos]])
            for tok in g:  # walk to g one token at a time, as the beam search does
                psi, r = scorer.score(ys, state, torch.tensor([[tok]]))
                state = scorer.select(r, psi, torch.tensor([0]))
                ys = torch.cat([ys, torch.tensor([[tok]])], dim=1)
            psi, _ = scorer.score(ys, state, torch.tensor([[1, 2, 3, eos, 0]]))
            for k, c in enumerate((1, 2, 3)):
                assert math.isclose(math.exp(psi[0, k]), prefix_prob((*g, c)), rel_tol=1e-4, abs_tol=1e-9)
            assert math.isclose(math.exp(psi[0, 3]), exact.get(g, 0.0), rel_tol=1e-4, abs_tol=1e-9)
            assert psi[0, 4] == float("-inf")  # blank is never a token
            checked += 1
    assert checked == 1 + 3 + 9 + 27


def test_ctc_prefix_scorer_batches_hypotheses() -> None:
    log_probs = torch.log_softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    scorer = CtcPrefixScorer(log_probs, blank=0, eos=4)
    s0 = scorer.initial_state()
    psi, r = scorer.score(torch.tensor([[4]]), s0, torch.tensor([[1, 2]]))
    state = scorer.select(r, psi, torch.tensor([0, 1]))  # hypotheses [1] and [2]
    ys = torch.tensor([[4, 1], [4, 2]])
    batched, _ = scorer.score(ys, state, torch.tensor([[1, 2, 3], [2, 3, 4]]))
    for i in range(2):
        single_state = state.index_select(torch.tensor([i]))
        single, _ = scorer.score(ys[i : i + 1], single_state, torch.tensor([[1, 2, 3], [2, 3, 4]][i : i + 1]))
        torch.testing.assert_close(batched[i], single[0])


class _FixedAttention:
    """A fake decoder: prefers token 1 for two steps, then <eos> (so its best sequence is [1, 1])."""

    def __init__(self, vocab: int, eos: int) -> None:
        self.vocab, self.eos = vocab, eos

    def init_state(self) -> None:
        return None

    def score(self, ys: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        probs = torch.full((ys.size(0), self.vocab), 0.02)
        probs[:, 1 if ys.size(1) - 1 < 2 else self.eos] = 0.9  # every hypothesis has the same length
        return torch.log(probs / probs.sum(dim=1, keepdim=True)), None

    def select_state(self, state: None, index: torch.Tensor) -> None:
        return None


def test_joint_beam_search_follows_the_weights() -> None:
    eos, vocab = 4, 5
    frames = [2, 2, 0, 3, 3, 0]  # CTC's best path collapses to [2, 3]
    log_probs = torch.full((len(frames), vocab), math.log(0.02))
    for t, tok in enumerate(frames):
        log_probs[t, tok] = math.log(0.9)
    log_probs[:, eos] = float("-inf")
    log_probs = torch.log_softmax(log_probs, dim=1)
    att = _FixedAttention(vocab, eos)
    kwargs = {"sos": eos, "eos": eos, "blank": 0, "beam_size": 3, "max_len": len(frames)}
    assert beam_search(att, log_probs, ctc_weight=1.0, **kwargs)[0].tokens == (2, 3)
    assert beam_search(None, log_probs, ctc_weight=1.0, **kwargs)[0].tokens == (2, 3)
    assert beam_search(att, None, ctc_weight=0.0, **kwargs)[0].tokens == (1, 1)

    # In between, a finished hypothesis' score is (1-λ)·log p_att(seq, eos) + λ·log p_ctc(seq), computed
    # here independently (torch's CTC loss), and the search must find one at least as good as either
    # scorer's favourite.
    def joint(seq: tuple[int, ...], lam: float) -> float:
        att_lp, ys = 0.0, torch.tensor([[eos]])
        for tok in (*seq, eos):
            att_lp += float(att.score(ys, None)[0][0, tok])
            ys = torch.cat([ys, torch.tensor([[tok]])], dim=1)
        ctc_lp = -float(
            torch.nn.functional.ctc_loss(
                log_probs.unsqueeze(1),
                torch.tensor([seq]),
                torch.tensor([len(frames)]),
                torch.tensor([len(seq)]),
                blank=0,
                reduction="sum",
            )
        )
        return (1 - lam) * att_lp + lam * ctc_lp

    # beam 4 -> pre-beam int(1.5*4) = 6 >= vocab: no pre-beam pruning, so the search sees every token.
    wide = {**kwargs, "beam_size": 4}
    for lam in (0.3, 0.5, 0.7):
        best = beam_search(att, log_probs, ctc_weight=lam, **wide)[0]
        assert math.isclose(best.score, joint(best.tokens, lam), rel_tol=1e-4)
        assert best.score >= max(joint((1, 1), lam), joint((2, 3), lam)) - 1e-4
    with pytest.raises(ValueError):
        beam_search(att, log_probs, ctc_weight=1.5, **kwargs)


def test_end_detect() -> None:
    good = Hypothesis(tokens=(1,), score=-1.0, length=3)
    bad = [Hypothesis(tokens=(1,) * (n - 2), score=-50.0, length=n) for n in (4, 5, 6)]
    assert not end_detect([good], 6)
    assert end_detect([good, *bad], 6)
    assert not end_detect([good, *bad[:2]], 6)


# --- other dtypes / devices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ENCODERS)
def test_float16_on_cpu(encoder: str) -> None:
    """No float32 constants hide in the forward paths: the whole model runs in half precision (on CPU here,
    so the check runs without a GPU; same code path as ``module.to('cuda', torch.float16)``)."""
    m = load_hybrid(make_spec(encoder, "tiny"))
    feats = random_feats([260, 200])
    reference = m.forward(feats)
    m.module.to(torch.float16)
    logits = m.forward(feats)
    assert logits.dtype == torch.float16
    torch.testing.assert_close(logits.float(), reference, atol=0.05, rtol=0.05)
    assert m.decode(m.prefill(feats), 10).tokens.shape == (2, 11)
    for weight in (0.0, 0.3, 1.0):
        assert len(m.transcribe(feats, weight)) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (hardware absent on CI)")
@pytest.mark.parametrize("encoder", ENCODERS)
def test_float16_on_cuda(encoder: str) -> None:
    m = load_hybrid(make_spec(encoder, "small"))
    m.module.to("cuda", torch.float16)
    feats = random_feats([400, 300])
    logits = m.forward(feats)
    assert logits.dtype == torch.float16 and logits.device.type == "cuda" and torch.isfinite(logits).all()
    assert m.decode(m.prefill(feats), 20).tokens.shape == (2, 21)
    for weight in (0.0, 0.3, 1.0):
        assert len(m.transcribe(feats, weight)) == 2
