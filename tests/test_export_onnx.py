"""torch -> ONNX export: outputs equal torch's, the cache is keyed and reused, and the CLI reports it.

Hybrid models use the tiny configurations (random weights: the export must reproduce the torch graph
whatever the weights); Whisper's export is checked end to end in test_runtime_equivalence.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.export.base import ExportOptions
from edgebench.agent.export.cache import MANIFEST, export_dir, export_key, load_artifact
from edgebench.agent.export.pipeline import export_model
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import load_torch_model, resolve
from tests.conftest import import_or_fail, run_cli

ort = import_or_fail("onnxruntime")
torch = import_or_fail("torch")


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    from edgebench.agent.datasets.loader import load_dataset

    return [u.audio for u in load_dataset("builtin")[:3]]


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache for tests that count or corrupt exports (the session cache stays shared)."""
    monkeypatch.setenv("EDGEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("name", ["lstm-ctc:tiny", "conformer-hybrid:tiny"])
def test_hybrid_encoder_ctc_matches_torch(name: str, speech: list[np.ndarray]) -> None:
    spec = resolve(name)
    artifact = export_model(spec, ExportOptions("onnx"))
    assert set(artifact.files) == {"encoder_ctc"}
    model = load_torch_model(spec)
    feats = model.features(speech, LogMelFrontend(spec.n_mels, "torch"))  # padded batch of 3 lengths
    with torch.inference_mode():
        enc, lengths, _ = model.encode(feats)
        expected = model.module.ctc(enc).numpy()
    session = ort.InferenceSession(str(artifact.files["encoder_ctc"]), providers=["CPUExecutionProvider"])
    got, got_lengths = session.run(None, {"features": feats.values.numpy(), "lengths": feats.lengths.numpy()})
    assert got_lengths.tolist() == lengths.tolist()
    for i, n in enumerate(lengths.tolist()):  # padded frames beyond each item's length are don't-care
        np.testing.assert_allclose(got[i, :n], expected[i, :n], atol=1e-4)


def test_cache_reuse_and_keys(own_cache: Path) -> None:
    spec = resolve("lstm-ctc:tiny")
    first = export_model(spec, ExportOptions("onnx"))
    assert not first.reused
    assert first.directory.parent == own_cache / "exports"
    second = export_model(spec, ExportOptions("onnx"))
    assert second.reused and second.directory == first.directory
    assert second.size_bytes == sum(p.stat().st_size for p in first.directory.iterdir())
    manifest = json.loads((first.directory / MANIFEST).read_text())
    assert manifest["files"] == {"encoder_ctc": "encoder_ctc.onnx"}
    assert manifest["meta"]["params"]["total"] > 0
    # Every option that changes the files changes the key; the same options give the same key.
    base = export_key(spec, ExportOptions("onnx"))
    assert base == export_key(spec, ExportOptions("onnx"))
    others = {
        export_key(spec, ExportOptions("onnx", quantize="int8")),
        export_key(spec, ExportOptions("onnx", precision="fp16")),
        export_key(spec, ExportOptions("onnx", seed=1)),
        export_key(resolve("lstm-ctc:small"), ExportOptions("onnx")),
    }
    assert base not in others and len(others) == 4


def test_trained_weights_are_keyed_by_content(own_cache: Path, tmp_path: Path) -> None:
    spec = resolve("lstm-ctc:tiny")
    weights = tmp_path / "w.pt"
    torch.save(load_torch_model(spec, seed=3).module.state_dict(), weights)
    key = export_key(spec, ExportOptions("onnx", weights=str(weights)))
    moved = tmp_path / "moved.pt"
    weights.rename(moved)
    assert export_key(spec, ExportOptions("onnx", weights=str(moved))) == key  # same content, same key
    torch.save(load_torch_model(spec, seed=4).module.state_dict(), moved)
    assert export_key(spec, ExportOptions("onnx", weights=str(moved))) != key


def test_interrupted_export_is_redone(own_cache: Path) -> None:
    spec = resolve("lstm-ctc:tiny")
    options = ExportOptions("onnx")
    target = export_dir(spec, options)
    target.mkdir(parents=True)
    (target / "encoder_ctc.onnx").write_bytes(b"half written")  # no manifest: never finished
    assert load_artifact(target) is None
    artifact = export_model(spec, options)
    assert not artifact.reused and artifact.directory == target
    ort.InferenceSession(str(artifact.files["encoder_ctc"]), providers=["CPUExecutionProvider"])


def test_int8_export_quantizes_weights(own_cache: Path) -> None:
    import onnx

    artifact = export_model(resolve("lstm-ctc:tiny"), ExportOptions("onnx", quantize="int8"))
    graph = onnx.load(str(artifact.files["encoder_ctc"])).graph
    ops = {node.op_type for node in graph.node}
    assert "DynamicQuantizeLSTM" in ops or "MatMulInteger" in ops
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.initializer)


def test_bad_options_fail_before_exporting(own_cache: Path) -> None:
    spec = resolve("lstm-ctc:tiny")
    with pytest.raises(EdgebenchError, match="exclude each other"):
        export_model(spec, ExportOptions("onnx", precision="fp16", quantize="int8"))
    with pytest.raises(EdgebenchError, match="only int8"):
        export_model(spec, ExportOptions("onnx", quantize="int4"))
    assert not (own_cache / "exports").exists()


def test_cli_export_prints_path_and_size(tmp_path: Path) -> None:
    env = {"EDGEBENCH_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli("export", "--model", "lstm-ctc:tiny", "--to", "onnx", "--quantize", "int8", env=env)
    assert first.returncode == 0, first.stderr
    assert "exported" in first.stdout and "MB on disk" in first.stdout
    directory = Path(first.stdout.splitlines()[1].split()[0])
    assert (directory / "encoder_ctc.onnx").is_file() and (directory / MANIFEST).is_file()
    again = run_cli("export", "--model", "lstm-ctc:tiny", "--to", "onnx", "--quantize", "int8", env=env)
    assert again.returncode == 0 and "reused from cache" in again.stdout
    assert str(directory) in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "coreml"], "--to coreml: use onnx or tflite"),
        (["--to", "onnx", "--quantize", "int4"], "--to onnx takes int8"),
        (["--to", "onnx", "--precision", "int8"], "--precision int8: use fp32 or fp16"),
    ],
)
def test_cli_export_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli("export", "--model", "lstm-ctc:tiny", *args, env={"EDGEBENCH_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_copied_exports_are_found_by_name_and_trusted(own_cache: Path, tmp_path: Path) -> None:
    """A device without torch gets a controller's export: found by name, identity taken on trust."""
    from edgebench.agent.export.cache import exports_root, find_copied_export, prebuilt_export

    spec = resolve("lstm-ctc:tiny")
    made = export_model(spec, ExportOptions("onnx"))
    assert made.verified and made.weights_identity == "random(seed=0)"
    found = find_copied_export(spec, ExportOptions("onnx"))
    assert found is not None and found.directory == made.directory and not found.verified
    assert found.weights_identity == "random(seed=0)"
    assert find_copied_export(spec, ExportOptions("onnx", quantize="int8")) is None  # other options
    assert find_copied_export(spec, ExportOptions("onnx", seed=5)) is None  # random weights: seed matters
    # A directory named like another model's is still this model's export (the manifest decides).
    small = resolve("lstm-ctc:small")
    decoy = exports_root() / made.directory.name.replace("lstm-ctc-tiny", "lstm-ctc-small")
    shutil.copytree(made.directory, decoy)
    assert find_copied_export(small, ExportOptions("onnx")) is None
    shutil.rmtree(decoy)
    # --weights naming the export (its directory or a file in it) runs exactly that one.
    for weights in (made.directory, made.files["encoder_ctc"]):
        named = prebuilt_export(spec, ExportOptions("onnx", weights=str(weights)))
        assert named is not None and named.directory == made.directory and not named.verified
    with pytest.raises(EdgebenchError, match="holds fp32 graphs but --precision int8"):
        prebuilt_export(spec, ExportOptions("onnx", quantize="int8", weights=str(made.directory)))
    with pytest.raises(EdgebenchError, match="not a tflite export"):
        prebuilt_export(spec, ExportOptions("tflite", weights=str(made.directory)))
    loose = tmp_path / "loose.onnx"
    loose.write_bytes(made.files["encoder_ctc"].read_bytes())
    with pytest.raises(EdgebenchError, match="not an edgebench export"):
        prebuilt_export(spec, ExportOptions("onnx", weights=str(loose)))
    # An older edgebench's export (manifest without layout and identity) is never taken on trust.
    other = exports_root() / f"{made.directory.name[:-16]}ffffffffffffffff"
    shutil.copytree(made.directory, other)
    manifest = json.loads((other / MANIFEST).read_text())
    (other / MANIFEST).write_text(
        json.dumps({k: v for k, v in manifest.items() if k not in ("layout", "weights")})
    )
    assert load_artifact(other) is None
    assert find_copied_export(spec, ExportOptions("onnx")).directory == made.directory  # type: ignore[union-attr]
    # Two copies of one export (same identity): the most recently *made* wins, whatever the file times.
    (other / MANIFEST).write_text(json.dumps({**manifest, "created": "2999-01-01T00:00:00Z"}))
    assert find_copied_export(spec, ExportOptions("onnx")).directory == other  # type: ignore[union-attr]
    # Copies from different weights are ambiguous: refused, naming both.
    (other / MANIFEST).write_text(json.dumps({**manifest, "weights": "state-dict:0123456789abcdef"}))
    with pytest.raises(EdgebenchError, match="from 2 different weights"):
        find_copied_export(spec, ExportOptions("onnx"))
