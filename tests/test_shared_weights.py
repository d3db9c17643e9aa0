"""Weights once: a stage's step graphs read one shared weights file (ONNX external data), and only under the rules.

The export writes `encoder.fp32.weights` / `decoder.fp32.weights` once, each distinct tensor once, and every step
graph of the stage points at the same offsets; the runtime computes exactly what a self-contained export computes.
A graph may read external data only from a weights file its manifest entry lists, which the manifest covers with a
sha256, inside the directory, within the file: anything else ends in one `error:` line naming the graph.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf

from apucodec.export.shared_weights import MIN_BYTES
from apucodec.model.directory import load_model_dir, sha256_file
from tests.audio_factory import mixture
from tests.cli_helpers import CPU, assert_one_line_error, invoke
from tests.tiny_models import export_on_one_thread

STAGES = ("encoder", "decoder")


def _external(tensor: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _graph(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=False)


@pytest.fixture(scope="module")
def inline_model(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same checkpoint as tiny_model_dir, exported with every weight inside its graph (the old layout)."""
    return export_on_one_thread(tiny_checkpoint, tmp_path_factory.mktemp("inline"), share_weights=False)


def test_each_stage_writes_its_weights_once_and_its_graphs_point_at_the_same_bytes(tiny_model_dir: Path):
    model = load_model_dir(tiny_model_dir)
    for stage in STAGES:
        name = f"{stage}.fp32.weights"
        entry = model.files[name]
        assert entry.format == "onnx-external-data" and entry.sha256 == sha256_file(tiny_model_dir / name)
        size = (tiny_model_dir / name).stat().st_size
        graphs = model.step_graphs(stage)
        assert len(graphs) == 2 and all(g.external_data == [name] for g in graphs)
        placed: dict[str, dict[str, tuple[str, str]]] = {}
        for g in graphs:
            proto = _graph(tiny_model_dir / g.name)
            placed[g.role] = {}
            for tensor in proto.graph.initializer:
                ext = _external(tensor)
                if not ext:  # what stayed inline is small
                    assert tensor.ByteSize() < MIN_BYTES + 200, tensor.name
                    continue
                assert ext["location"] == name and int(ext["offset"]) + int(ext["length"]) <= size
                placed[g.role][tensor.name] = (ext["offset"], ext["length"])
        small, large = (placed[g.role] for g in graphs)
        weights = [t for t in small if t.endswith("weight")]
        assert weights and all(small[t] == large[t] for t in weights)   # every conv weight: one copy, same place
        spans = {span for per_graph in placed.values() for span in per_graph.values()}
        assert sum(int(length) for _, length in spans) <= size             # each distinct blob written once
        # the tensors the graphs read are the ones a self-contained graph carries, to the byte
        full = onnx.load(str(tiny_model_dir / graphs[0].name))
        external = {t.name for t in _graph(tiny_model_dir / graphs[0].name).graph.initializer if _external(t)}
        assert external and all(not _external(t) for t in full.graph.initializer)


def test_shared_weights_run_exactly_like_the_self_contained_export(tiny_model_dir: Path, inline_model: Path):
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    assert not any(p.suffix == ".weights" for p in inline_model.iterdir())
    inline, shared = load_model_dir(inline_model), load_model_dir(tiny_model_dir)
    # caches key a graph by its content: a self-contained graph's is its file's sha256 (keys made before shared
    # weights stay valid), a graph reading a weights file's covers that file too
    assert inline.content_sha256("encoder.s4") == inline.files["encoder.s4"].sha256
    assert shared.content_sha256("encoder.s4") != shared.files["encoder.s4"].sha256
    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1)
    audio = mixture(1.3, seed=5).astype(np.float32)
    shared_out, _ = CodecEngine.open(tiny_model_dir, settings, warn=None).run_array(audio)
    inline_out, _ = CodecEngine.open(inline_model, settings, warn=None).run_array(audio)
    assert np.array_equal(shared_out, inline_out)
    # the offline graphs hold most of the tiny model's bytes (their bounds masks), the step graphs' weights once
    size = {d: sum(p.stat().st_size for p in d.iterdir()) for d in (tiny_model_dir, inline_model)}
    assert size[tiny_model_dir] < size[inline_model]


def _copy(model: Path, folder: Path) -> Path:
    target = folder / "model"
    shutil.copytree(model, target)
    return target


def _audio(folder: Path) -> str:
    path = folder / "in.wav"
    sf.write(path, mixture(0.5, seed=1), 44100)
    return str(path)


def _refused(model: Path, folder: Path, *fragments: str) -> None:
    """`apucodec run` on `model`: one error line with every fragment, no output, the model untouched."""
    before = {p.name: sha256_file(p) for p in model.iterdir() if p.is_file()}
    out = folder / "out.wav"
    assert_one_line_error(invoke("run", _audio(folder), str(out), *CPU, model=model), *fragments)
    assert not out.exists()
    assert {p.name: sha256_file(p) for p in model.iterdir() if p.is_file()} == before


def test_a_tampered_weights_file_is_refused_in_one_line(tiny_model_dir: Path, tmp_path: Path):
    model = _copy(tiny_model_dir, tmp_path)
    weights = model / "decoder.fp32.weights"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    _refused(model, tmp_path, "decoder.fp32.weights", "sha256 does not match")


def _point_first_tensor(model: Path, role: str, **fields: str) -> None:
    """Rewrite the first external tensor of `role`'s graph (location/offset/length/other keys), keeping the
    manifest's sha256 of the graph consistent so that only the external-data rules can refuse it."""
    path = model / f"{role}.onnx"
    proto = _graph(path)
    tensor = next(t for t in proto.graph.initializer if _external(t))
    ext = {**_external(tensor), **fields}
    del tensor.external_data[:]
    for key, value in ext.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path.write_bytes(proto.SerializeToString())
    _edit_manifest(model, lambda m: m["files"][role].update(sha256=sha256_file(path)))


def _edit_manifest(model: Path, edit) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    edit(manifest)
    (model / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("case", ["parent", "absolute", "unlisted", "past_end", "memory", "unknown_key",
                                  "entry_names_codebooks", "symlink_out"])
def test_external_data_outside_the_rules_is_refused(tiny_model_dir: Path, tmp_path: Path, case: str):
    model = _copy(tiny_model_dir, tmp_path)
    weights = model / "encoder.fp32.weights"
    fragments: tuple[str, ...]
    if case == "parent":
        shutil.copy(weights, tmp_path / "encoder.fp32.weights")  # the same bytes, one folder up
        _point_first_tensor(model, "encoder.s4", location="../encoder.fp32.weights")
        fragments = ("encoder.s4.onnx", "not a plain file name")
    elif case == "absolute":
        _point_first_tensor(model, "encoder.s4", location=str(weights))
        fragments = ("encoder.s4.onnx", "not a plain file name")
    elif case == "memory":  # ONNX Runtime reads this location as a memory address
        _point_first_tensor(model, "encoder.s4", location="*/_ORT_MEM_ADDR_/*")
        fragments = ("encoder.s4.onnx", "not a plain file name")
    elif case == "unlisted":
        shutil.copy(weights, model / "other.weights")  # in the folder, but no sha256 covers it
        _point_first_tensor(model, "encoder.s4", location="other.weights")
        fragments = ("encoder.s4.onnx", "'other.weights'", "does not list")
    elif case == "past_end":
        _point_first_tensor(model, "encoder.s4", offset=str(weights.stat().st_size - 4))
        fragments = ("encoder.s4.onnx", "runs past the end of encoder.fp32.weights")
    elif case == "unknown_key":
        _point_first_tensor(model, "encoder.s4", basepath="/etc")
        fragments = ("encoder.s4.onnx", "unsupported key 'basepath'")
    elif case == "entry_names_codebooks":
        _edit_manifest(model, lambda m: m["files"]["encoder.s4"].update(external_data=["codebooks.npy"]))
        fragments = ("encoder.s4.onnx", "'codebooks.npy'", "not a weights file")
    else:  # the weights file is a symlink to a file outside the directory, with the same bytes
        outside = tmp_path / "elsewhere.weights"
        shutil.copy(weights, outside)
        weights.unlink()
        os.symlink(outside, weights)
        fragments = ("encoder.fp32.weights", "points outside the model directory")
    _refused(model, tmp_path, *fragments)


def test_optimized_graph_cache_tells_apart_models_whose_graph_files_are_identical(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two models whose graph files are byte-identical and whose weights files differ (as two checkpoints of one
    config can be, their small inline tensors aside): the CPU EP's optimized-graph cache must key by graph *and*
    weights, or the second model runs the first's weights."""
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    other = _copy(tiny_model_dir, tmp_path)
    weights = other / "decoder.fp32.weights"
    halved = np.frombuffer(weights.read_bytes(), dtype=np.float32) * np.float32(0.5)  # still finite floats
    weights.write_bytes(halved.tobytes())
    _edit_manifest(other, lambda m: m["files"]["decoder.fp32.weights"].update(sha256=sha256_file(weights)))
    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1, step_frames=4)
    audio = mixture(0.7, seed=2).astype(np.float32)
    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(tmp_path / "cache"))
    first, _ = CodecEngine.open(tiny_model_dir, settings, warn=None).run_array(audio)
    second, _ = CodecEngine.open(other, settings, warn=None).run_array(audio)     # cache filled by the first model
    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(tmp_path / "fresh"))
    alone, _ = CodecEngine.open(other, settings, warn=None).run_array(audio)
    assert np.array_equal(second, alone) and not np.allclose(first, second)
    cached = list((tmp_path / "cache" / "ort-optimized").glob("*.onnx"))
    assert len(cached) == 3  # the encoder once (same graph, same weights), each model's decoder
    assert all(not any(t.data_location for t in _graph(p).graph.initializer) for p in cached)  # self-contained
