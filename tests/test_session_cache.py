"""The optimized-graph cache: miss -> commit -> hit with identical outputs, and every way an entry must be refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from apucodec.model.directory import sha256_file
from apucodec.runtime import session_cache
from apucodec.runtime.session_cache import cache_root, cached_graph, cached_session_path

CPU = "CPUExecutionProvider"


@pytest.fixture()
def graph(tmp_path: Path) -> Path:
    """Conv -> Add(constant) -> LeakyRelu: something ORT's optimizer actually rewrites (fusions, folding)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 1, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((1, 4, 1)).astype(np.float32), "c")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Add", ["y", "c"], ["z"]),
             helper.make_node("LeakyRelu", ["z"], ["out"], alpha=0.1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 32])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 32])], inits)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _open(entry_path: Path, entry: session_cache.CachedGraph) -> ort.InferenceSession:
    return ort.InferenceSession(str(entry_path), entry.apply(ort.SessionOptions()), providers=[CPU])


def _x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((1, 1, 32)).astype(np.float32)


def test_miss_commit_hit_same_outputs(graph: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    sha = sha256_file(graph)
    reference = ort.InferenceSession(str(graph), providers=[CPU]).run(None, {"x": _x()})[0]
    with cached_graph(graph, sha, CPU, root=root) as first:
        assert not first.hit and first.path == graph and "optimized_model_filepath" in first.options
        session = _open(first.path, first)
    np.testing.assert_array_equal(session.run(None, {"x": _x()})[0], reference)
    files = sorted(p.name for p in (root / "ort-optimized").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".onnx")   # no temp left over

    second = cached_session_path(graph, sha, CPU, root=root)
    assert second.hit and second.path != graph
    assert second.options == {"graph_optimization_level": "ORT_DISABLE_ALL"}
    np.testing.assert_array_equal(_open(second.path, second).run(None, {"x": _x()})[0], reference)
    meta = json.loads(second.path.with_suffix(".json").read_text())
    assert meta["graph_sha256"] == sha and meta["ep"] == CPU and meta["onnxruntime"] == ort.__version__


def test_key_changes_and_tampering_are_misses(graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    sha = sha256_file(graph)
    with cached_graph(graph, sha, CPU, root=root) as entry:
        _open(entry.path, entry)
    assert cached_session_path(graph, sha, CPU, root=root).hit
    assert not cached_session_path(graph, "0" * 64, CPU, root=root).hit                      # other graph
    assert not cached_session_path(graph, sha, CPU, {"session.x": "1"}, root=root).hit       # other options
    assert not cached_session_path(graph, sha, CPU, optimization_level="ORT_ENABLE_BASIC", root=root).hit
    monkeypatch.setattr(ort, "__version__", "0.0.1")  # as if another onnxruntime were installed
    assert not cached_session_path(graph, sha, CPU, root=root).hit                           # other ORT
    monkeypatch.undo()

    hit = cached_session_path(graph, sha, CPU, root=root)
    data = bytearray(hit.path.read_bytes())
    data[-1] ^= 0xFF
    hit.path.write_bytes(bytes(data))                       # corrupted / swapped cached file
    again = cached_session_path(graph, sha, CPU, root=root)
    assert not again.hit and "sha256" in again.reason and again.path == graph
    again.discard()

    meta_path = hit.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["graph_sha256"] = "f" * 64                         # metadata recording another key under this name
    meta_path.write_text(json.dumps(meta))
    assert cached_session_path(graph, sha, CPU, root=root).reason == "metadata records another key"


def test_other_eps_and_unwritable_cache_fall_back_to_the_source(graph: Path, tmp_path: Path) -> None:
    entry = cached_session_path(graph, "a" * 64, "VitisAIExecutionProvider", root=tmp_path)
    assert not entry.hit and entry.path == graph and entry.options == {}
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    entry = cached_session_path(graph, "a" * 64, CPU, root=blocker)
    assert entry.path == graph and entry.options == {} and "not writable" in entry.reason
    assert entry.commit() is False


def test_failed_session_leaves_no_pending_file(graph: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    with pytest.raises(RuntimeError), cached_graph(graph, sha256_file(graph), CPU, root=root):
        raise RuntimeError("session creation failed")
    assert list((root / "ort-optimized").iterdir()) == []


def test_concurrent_writers_leave_one_valid_entry(graph: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    sha = sha256_file(graph)
    a = cached_session_path(graph, sha, CPU, root=root)
    b = cached_session_path(graph, sha, CPU, root=root)
    assert a.options["optimized_model_filepath"] != b.options["optimized_model_filepath"]
    _open(a.path, a)
    _open(b.path, b)
    assert a.commit() and b.commit()
    assert cached_session_path(graph, sha, CPU, root=root).hit
    assert len(list((root / "ort-optimized").iterdir())) == 2


def test_cache_root_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("APUCODEC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "apucodec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path(os.path.expanduser("~")) / ".cache" / "apucodec"


def test_codec_sessions_use_the_cache_second_open_loads_optimized_graphs(runtime_model: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime routes its CPU sessions through the cache: the first CodecEngine fills it, the second loads from it
    (ORT's optimization off) and gives the same output to the bit."""
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings
    from tests.audio_factory import mixture

    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(tmp_path / "cache"))
    opened: list[str] = []
    original = ort.InferenceSession

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, path, *args, **kwargs) -> None:
            opened.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Recording)
    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1)
    audio = mixture(0.5, seed=3).astype(np.float32)
    cold_out, _ = CodecEngine.open(runtime_model, settings, warn=None).run_array(audio)
    cache = tmp_path / "cache" / "ort-optimized"
    assert len(list(cache.glob("*.onnx"))) == 2 and len(list(cache.glob("*.json"))) == 2   # encoder + decoder
    assert not any(p.startswith(str(cache)) for p in opened)
    opened.clear()
    warm = CodecEngine.open(runtime_model, settings, warn=None)
    warm_out, _ = warm.run_array(audio)
    assert len(opened) == 2 and all(p.startswith(str(cache)) for p in opened)
    placed = warm.placement.stage("encoder")
    assert placed.node_source == "assigned, cached" and "optimized graph from the cache" in placed.describe()
    assert np.array_equal(cold_out, warm_out)
