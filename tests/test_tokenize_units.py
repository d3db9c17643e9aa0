"""apucodec.dataset without a Ray cluster: corpus listing and manifests, the work plan (resume, duplicates, length
order), atomic shards, reading back and decoding, one-line errors, and the runtime staying free of Ray/pyarrow."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from apucodec.model.directory import load_model_dir

pa = pytest.importorskip("pyarrow")

import pyarrow.parquet as pq  # noqa: E402

from apucodec.cli.main import cli  # noqa: E402
from apucodec.dataset import TokenDataset, shards  # noqa: E402
from apucodec.dataset.corpus import list_corpus, probe_item  # noqa: E402
from apucodec.dataset.encoder import CodecAdapter, resolve_model  # noqa: E402
from apucodec.dataset.tokenize_run import plan  # noqa: E402
from apucodec.errors import ApucodecError  # noqa: E402
from tests.audio_factory import mixture, tone  # noqa: E402
from tests.cli_helpers import assert_one_line_error, modules_loaded  # noqa: E402
from tests.tokenize_helpers import REPO  # noqa: E402


@pytest.fixture()
def folder(tmp_path) -> Path:
    root = tmp_path / "corpus"
    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "one.wav", tone(0.3), 44100)
    sf.write(root / "a" / "two.flac", tone(0.2, 220.0, rate=16000), 16000)
    sf.write(root / "a" / "b" / "three.wav", tone(0.1), 44100)
    (root / ".hidden.wav").write_bytes(b"x")
    return root


def test_list_folder_recursive_sorted_skips_hidden_and_output(folder):
    (folder / "codes" / "shards").mkdir(parents=True)
    (folder / "codes" / "shards" / "00000.parquet").write_bytes(b"x")
    items = list_corpus(folder, exclude=folder / "codes")
    assert [i.relpath for i in items] == ["a/b/three.wav", "a/two.flac", "one.wav"]
    assert all(Path(i.path).is_absolute() and Path(i.path).is_file() for i in items)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_list_manifest_relative_and_absolute_paths(folder, kind):
    paths = ["one.wav", str(folder / "a" / "two.flac")]
    manifest = folder / f"list.{kind}"
    if kind == "csv":
        manifest.write_text("path,text\n" + "".join(f"{p},hello\n" for p in paths))
    elif kind == "jsonl":
        manifest.write_text("".join(json.dumps({"path": p, "speaker": 1}) + "\n" for p in paths))
    else:
        pq.write_table(pa.table({"path": paths, "n": [1, 2]}), manifest)
    items = list_corpus(manifest)
    assert sorted(i.path for i in items) == sorted([str(folder / "one.wav"), str(folder / "a" / "two.flac")])


def test_manifest_and_corpus_errors(folder, tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file\nx.wav\n")
    with pytest.raises(ApucodecError, match="has no 'path' column"):
        list_corpus(bad)
    with pytest.raises(ApucodecError, match="no such folder or manifest"):
        list_corpus(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(ApucodecError, match="expected a folder or a manifest"):
        list_corpus(tmp_path / "x.txt")
    broken = tmp_path / "m.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(ApucodecError, match="unreadable manifest"):
        list_corpus(broken)


def test_probe_item_reasons(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"\x00" * 100)
    sf.write(tmp_path / "ok.wav", tone(0.25, rate=22050), 22050)
    assert probe_item(str(tmp_path / "empty.wav"))["error"] == "empty file (0 bytes)"
    assert "not readable audio" in probe_item(str(tmp_path / "junk.wav"))["error"]
    assert probe_item(str(tmp_path / "missing.wav"))["error"] == "cannot read (No such file or directory)"
    ok = probe_item(str(tmp_path / "ok.wav"))
    assert ok["error"] == "" and ok["sample_rate"] == 22050 and ok["duration"] == pytest.approx(0.25, abs=1e-4)
    assert len(ok["sha256"]) == 64


def test_plan_skips_done_dedups_and_sorts_longest_first():
    def row(rel, sha, seconds, error=""):
        return {"relpath": rel, "sha256": sha, "duration": seconds, "error": error, "path": "/" + rel}

    probed = [row("b.wav", "h2", 1.0), row("a.wav", "h1", 3.0), row("c.wav", "h3", 2.0), row("d.wav", "h1", 3.0),
              row("e.wav", "h4", 0.0, "contains NaN or infinite samples"), row("f.wav", "h5", 9.0),
              row("g.wav", "h5", 9.0)]
    todo, failures, duplicates, already = plan(probed, {"h2": "b.wav", "h3": "old/c.wav"})
    assert [r["relpath"] for r in todo] == ["f.wav", "a.wav"]  # longest first; b done, c/d/g duplicates
    assert already == 1
    assert [(d["path"], d["same_as"]) for d in duplicates] == [("c.wav", "old/c.wav"), ("d.wav", "a.wav"),
                                                               ("g.wav", "f.wav")]
    assert failures == [{"path": "e.wav", "sha256": "h4", "stage": "probe",
                         "reason": "contains NaN or infinite samples"}]


def _row(i: int, model_id: str = "m1", codebooks: int = 2, precision: str = "fp32", sha: str = "s" * 64) -> dict:
    codes = np.arange(codebooks * 3, dtype=np.int64).reshape(codebooks, 3) + i
    return {"path": f"f{i}.wav", "sha256": f"h{i}", "duration": 0.1, "sample_rate": 44100, "samples": 1500,
            "frames": 3, "codebooks": codebooks, "codes": shards.codes_to_bytes(codes), "model_id": model_id,
            "precision": precision, "graph_sha256": sha}


def test_shards_atomic_numbered_and_resumable(tmp_path, monkeypatch):
    writer = shards.ShardWriter(tmp_path, shard_size=2)
    for i in range(5):
        writer.add(_row(i))
    assert [p.name for p in shards.shard_paths(tmp_path)] == ["00000.parquet", "00001.parquet"]
    # a write that dies midway leaves nothing visible and no temp file
    monkeypatch.setattr(shards.pyarrow_parquet(), "write_table", _raise_after_partial_write)
    with pytest.raises(KeyboardInterrupt):
        writer.flush()
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "shards").iterdir()] == ["00000.parquet", "00001.parquet"]
    assert shards.completed(tmp_path, "m1", 2) == {f"h{i}": f"f{i}.wav" for i in range(4)}
    # a new writer (a resumed run) continues the numbering
    again = shards.ShardWriter(tmp_path, shard_size=2)
    again.add(_row(9))
    again.flush()
    assert shards.shard_paths(tmp_path)[-1].name == "00002.parquet"
    with pytest.raises(ApucodecError, match="holds codes of model m1 with 2 codebooks"):
        shards.completed(tmp_path, "m1", 4)
    # one folder, one encoder graph: codes of the CPU's INT8 graph are refused beside FP32 codes
    assert len(shards.completed(tmp_path, "m1", 2, "fp32", "s" * 64)) == 5
    with pytest.raises(ApucodecError, match="holds codes made by the fp32 encoder graph"):
        shards.completed(tmp_path, "m1", 2, "cpu-int8", "c" * 64)
    with pytest.raises(ApucodecError, match="use the same --precision"):
        shards.completed(tmp_path, "m1", 2, "fp32", "d" * 64)
    (tmp_path / "shards" / ".00003.parquet.abc.tmp").write_bytes(b"half")
    assert shards.remove_partial_shards(tmp_path) == 1


def _raise_after_partial_write(table, where, **kwargs):
    where.write(b"PAR1 partial")
    raise KeyboardInterrupt


def test_reader_codes_and_decode_match_the_runtime(runtime_model, tmp_path):
    """Rows written from the adapter's codes read back as the same arrays, and decoding one equals the runtime's
    own encode -> decode of the same samples (`pyarrow` and Hugging Face `datasets` read the shards as they are)."""
    model = resolve_model(runtime_model)
    encoder = CodecAdapter(runtime_model, threads=1)
    clips = {"a.wav": mixture(0.6, seed=3), "b.wav": tone(0.1, 550.0)}
    writer = shards.ShardWriter(tmp_path, shard_size=10)
    expected = {}
    for name, audio in clips.items():
        codes = encoder.encode(audio, 3)
        expected[name] = codes
        writer.add({"path": name, "sha256": name, "duration": audio.size / 44100, "sample_rate": 44100,
                    "samples": audio.size, "frames": codes.shape[1], "codebooks": 3,
                    "codes": shards.codes_to_bytes(codes), "model_id": model.model_id,
                    "precision": model.graph_precision, "graph_sha256": model.graph_sha256})
    writer.flush()
    shards.write_dataset_json(tmp_path, shards.summarize(tmp_path, model.summary, 3, [], [], {}))
    # dataset.json says which encoder graph made the codes (tokenize's default: FP32, the same on any machine)
    graph = model.summary["encoder_graph"]
    assert graph["precision"] == "fp32" and encoder.graph == ("fp32", graph["sha256"])
    assert graph["sha256"] == load_model_dir(runtime_model).files[graph["file"].removesuffix(".onnx")].sha256
    # the model's sections as JSON (a record read like a dict once let a missing top-level key pass as None)
    manifest = load_model_dir(runtime_model).manifest
    assert model.summary["quantization"] is None and model.summary["codec"] == manifest.codec
    assert model.summary["streaming"] == manifest.streaming.to_dict() and model.summary["producers"]
    dataset = TokenDataset(tmp_path)
    items = {item.path: item for item in dataset}
    for name, codes in expected.items():
        np.testing.assert_array_equal(items[name].codes, codes)
    decoded = dataset.decode(items["a.wav"])
    decoder = CodecAdapter(runtime_model, threads=1, stages=("decoder",))
    np.testing.assert_array_equal(decoded, decoder.decode(expected["a.wav"], clips["a.wav"].size))
    assert decoded.shape == clips["a.wav"].shape
    table = pq.read_table(tmp_path / "shards")
    assert sorted(table.column("path").to_pylist()) == ["a.wav", "b.wav"]
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset("parquet", data_files=str(tmp_path / "shards" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    row = next(r for r in hf if r["path"] == "b.wav")
    np.testing.assert_array_equal(
        np.frombuffer(row["codes"], "<u2").reshape(row["codebooks"], row["frames"]), expected["b.wav"])


def test_cli_errors_are_one_line_and_write_nothing(folder, runtime_model, tmp_path):
    runner = CliRunner()
    as_file = tmp_path / "out.txt"
    as_file.write_text("keep")
    cases = [([str(folder), str(as_file)], "exists and is not a folder"),
             ([str(tmp_path / "nope"), str(tmp_path / "o1")], "no such folder or manifest"),
             ([str(folder), str(tmp_path / "missing" / "o2")], "does not exist"),
             ([str(folder), str(tmp_path / "o3"), "--codebooks", "9"], "--codebooks must be in 1..4"),
             ([str(folder), str(tmp_path / "o4"), "--ray", f"127.0.0.1:{_closed_port()}"], "cannot reach the Ray")]
    for args, fragment in cases:
        result = runner.invoke(cli, ["tokenize", *args, "--model", str(runtime_model)])
        assert_one_line_error(result, fragment)
    assert as_file.read_text() == "keep"
    assert not any((tmp_path / name).exists() for name in ("o1", "o3", "o4"))


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_extra_names_it(monkeypatch):
    from apucodec.dataset import deps

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ApucodecError, match=r"pip install 'apucodec\[tokenize\]'"):
        deps.ray()


def test_runtime_and_cli_import_no_ray_or_pyarrow():
    code = "import apucodec, apucodec.runtime.codec_runner, apucodec.cli.main, apucodec.dataset"
    out, loaded = modules_loaded(code, watch=("ray", "pyarrow", "torch"), cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert loaded == []


def test_errors_inside_ray_become_one_line():
    ray = pytest.importorskip("ray")
    from apucodec.dataset.cluster import ray_errors

    remote = ray.exceptions.RayTaskError("EncodeActor.__init__", "Traceback (most recent call last):\n  ...",
                                         ApucodecError("/models/m/encoder.onnx: missing from the model directory"))
    with pytest.raises(ApucodecError) as info, ray_errors():
        raise remote
    assert str(info.value) == "the Ray job failed: /models/m/encoder.onnx: missing from the model directory"
    with pytest.raises(ApucodecError) as info, ray_errors():  # no cause: the text's last line, class name dropped
        raise ray.exceptions.RayError("Traceback ...\napucodec.errors.ApucodecError: /m: no such model directory")
    assert str(info.value) == "the Ray job failed: /m: no such model directory"



def test_one_run_per_output_folder(tmp_path):
    from apucodec.dataset.tokenize_run import exclusive

    code = ("import sys; from pathlib import Path; from apucodec.dataset.tokenize_run import exclusive\n"
            "try:\n    with exclusive(Path(sys.argv[1])): print('got it')\n"
            "except Exception as exc: print(exc)")

    def other_run() -> str:
        return subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                              check=True).stdout.strip()

    with exclusive(tmp_path):
        assert other_run() == f"{tmp_path}: another apucodec tokenize run is writing here"
    assert other_run() == "got it"
