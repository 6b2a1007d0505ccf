"""The bare engines of ``benchmarks/footprint.py``: Whisper transcription with nothing but the engine.

Run by footprint.py as ``python benchmarks/footprint_bare.py JSON`` in a fresh process; it imports nothing
from edgebench (the parent resolved the files, the prompt and the clips and passes them in the JSON), so
its memory is the engine's own: the interpreter, numpy, soundfile, the engine and its tokenizer, the
model, one clip's features at a time. It prints one JSON line: ``{"import_rss_bytes": RSS after the
imports, "peak_rss_bytes": the kernel's high-water mark of this process (``VmHWM``), "texts": [...]}``.

The work is the transcribe scenario's: one warm-up clip, then every clip once, batch 1, greedy (the
prompt, the suppressed tokens and the length cap from the export's generation_config), log-mel in numpy
exactly as ``models/frontend/logmel.py`` computes it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import soundfile as sf

SAMPLES = 480_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def hwm_bytes() -> int:
    """This process's peak RSS (``VmHWM``: per address space, so it starts afresh at exec, unlike
    ``ru_maxrss``, which keeps the peak of the process that forked us)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def log_mel(audio: np.ndarray, filters: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(audio, np.float32)
    a = a[:SAMPLES] if len(a) >= SAMPLES else np.pad(a, (0, SAMPLES - len(a)))
    window = np.hanning(401)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(a, 200, mode="reflect"), 400)[::160]
    power = (np.abs(np.fft.rfft(frames * window, axis=-1)[:-1]) ** 2).T
    log = np.log10(np.maximum(filters @ power.astype(np.float32), 1e-10))
    return ((np.maximum(log, log.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


def read_clip(path: str) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)


class Greedy:
    """The decoding rules every exported Whisper shares: suppressed tokens, begin-suppress at step 0,
    stop at end-of-text or after ``max_new`` tokens."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.suppress = np.asarray(cfg["suppress_tokens"], dtype=np.int64)
        self.begin = np.asarray(cfg["begin_suppress_tokens"], dtype=np.int64)
        self.eot = int(cfg["eos_token_id"])
        self.max_new = int(cfg["max_new_tokens"])

    def pick(self, logits: np.ndarray, step: int) -> int:
        logits = np.array(logits, dtype=np.float32).reshape(-1)
        logits[self.suppress] = -np.inf
        if step == 0:
            logits[self.begin] = -np.inf
        return int(logits.argmax())


def ctranslate2_engine(job: dict[str, Any]):  # type: ignore[no-untyped-def]
    import ctranslate2

    model = ctranslate2.models.Whisper(
        job["model_dir"],
        device="cpu",
        compute_type=job["compute_type"],
        intra_threads=job["threads"],
        inter_threads=1,
    )
    prompt = job["decoding"]["prompt"]

    def run(feats: np.ndarray) -> list[int]:
        encoded = model.encode(ctranslate2.StorageView.from_array(feats[None]), to_cpu=False)
        result = model.generate(encoded, [prompt], beam_size=1, max_length=448, suppress_blank=True)
        return list(result[0].sequences_ids[0])

    return run


def onnxruntime_engine(job: dict[str, Any]):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = job["threads"]
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    encoder = ort.InferenceSession(job["files"]["encoder"], opts, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(job["files"]["decoder"], opts, providers=["CPUExecutionProvider"])
    meta = job["meta"]
    past_names = [n for n in meta["decoder_inputs"] if n.startswith("past_")]
    greedy = Greedy(job["decoding"])

    def run(feats: np.ndarray) -> list[int]:
        cross = dict(
            zip(meta["encoder_outputs"], encoder.run(None, {"input_features": feats[None]}), strict=True)
        )
        empty = np.zeros((1, int(meta["n_heads"]), 0, int(meta["head_dim"])), dtype=np.float32)
        past = {n: empty for n in past_names}
        ids = np.asarray([job["decoding"]["prompt"]], dtype=np.int64)
        out: list[int] = []
        for step in range(greedy.max_new):
            logits, *presents = decoder.run(None, {"input_ids": ids, **past, **cross})
            past = dict(zip(past_names, presents, strict=True))
            token = greedy.pick(logits, step)
            if token == greedy.eot:
                break
            out.append(token)
            ids = np.asarray([[token]], dtype=np.int64)
        return out

    return run


def litert_engine(job: dict[str, Any]):  # type: ignore[no-untyped-def]
    from ai_edge_litert.interpreter import Interpreter

    def interpreter(path: str):  # type: ignore[no-untyped-def]
        it = Interpreter(model_path=path, num_threads=job["threads"])
        it.allocate_tensors()
        runner = it.get_signature_runner()
        inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
        outputs = [d["index"] for _, d in sorted(runner.get_output_details().items(), key=lambda kv: kv[0])]
        return it, inputs, outputs

    enc, enc_in, enc_out = interpreter(job["files"]["encoder"])
    dec, dec_in, dec_out = interpreter(job["files"]["decoder"])
    meta = job["meta"]
    max_pos = int(meta["max_positions"])
    greedy = Greedy(job["decoding"])
    prompt = job["decoding"]["prompt"]

    def run(feats: np.ndarray) -> list[int]:
        enc.set_tensor(enc_in["input_features"], feats[None])
        enc.invoke()
        cross_k, cross_v = (enc.get_tensor(i) for i in enc_out)
        dec.set_tensor(dec_in["cross_k"], cross_k)
        dec.set_tensor(dec_in["cross_v"], cross_v)
        shape = (*cross_k.shape[:3], max_pos, cross_k.shape[-1])
        self_k, self_v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        out: list[int] = []
        tokens = list(prompt)
        pos = 0
        step = 0
        while pos < max_pos and step < greedy.max_new:
            token = tokens[pos] if pos < len(prompt) else out[-1]
            dec.set_tensor(dec_in["token"], np.asarray([[token]], dtype=np.int32))
            dec.set_tensor(dec_in["position"], np.asarray([pos], dtype=np.int32))
            dec.set_tensor(dec_in["self_k"], self_k)
            dec.set_tensor(dec_in["self_v"], self_v)
            dec.invoke()
            logits, new_k, new_v = (dec.get_tensor(i) for i in dec_out)
            self_k[:, :, :, pos] = new_k[:, :, :, 0]
            self_v[:, :, :, pos] = new_v[:, :, :, 0]
            pos += 1
            if pos < len(prompt):
                continue
            chosen = greedy.pick(logits, step)
            step += 1
            if chosen == greedy.eot:
                break
            out.append(chosen)
        return out

    return run


def torch_engine(job: dict[str, Any]):  # type: ignore[no-untyped-def]
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.set_num_threads(job["threads"])
    model = WhisperForConditionalGeneration.from_pretrained(job["model_dir"], dtype=torch.float32).eval()
    if job["precision"] == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def run(feats: np.ndarray) -> list[int]:
        with torch.inference_mode():
            ids = model.generate(
                torch.from_numpy(feats[None]),
                max_new_tokens=job["decoding"]["max_new_tokens"],
                do_sample=False,
                num_beams=1,
            )
        return [int(i) for i in ids[0] if int(i) < job["decoding"]["timestamp_begin"]]

    return run


ENGINES = {
    "ctranslate2": ctranslate2_engine,
    "onnxruntime": onnxruntime_engine,
    "litert": litert_engine,
    "torch": torch_engine,
}


def main() -> int:
    job = json.loads(sys.argv[1])
    make = ENGINES[job["runtime"]]
    if job["runtime"] == "torch":
        import torch  # noqa: F401  (imports first, as a user's program would: the import baseline)
        from transformers import WhisperForConditionalGeneration  # noqa: F401  (the modeling code too)
    elif job["runtime"] == "ctranslate2":
        import ctranslate2  # noqa: F401
    elif job["runtime"] == "onnxruntime":
        import onnxruntime  # noqa: F401
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    from tokenizers import Tokenizer

    import_rss = rss_bytes()
    filters = np.load(job["mel_filters"])["mel_80"]
    tokenizer = Tokenizer.from_file(job["tokenizer"])
    run = make(job)
    clips = [read_clip(p) for p in job["clips"]]
    run(log_mel(clips[0], filters))  # warm-up
    texts = [tokenizer.decode(run(log_mel(c, filters)), skip_special_tokens=True).strip() for c in clips]
    print(json.dumps({"import_rss_bytes": import_rss, "peak_rss_bytes": hwm_bytes(), "texts": texts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
