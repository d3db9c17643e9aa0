"""`apucodec tokenize` through a real Ray head on loopback: codes equal `apucodec encode`'s, bad files are listed
and never stop the job, and a job killed with SIGKILL midway and resumed loses and duplicates nothing.

One head serves the whole module (Ray start-up is the slow part); CI provides one via APUCODEC_TEST_RAY_ADDRESS.
The tiny test model (tests/conftest.py, shared with the other runtime tests) keeps encoding cheap; the kill lands
midway whatever the speed because the driver is frozen (SIGSTOP) the moment its first shard is visible, then killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

pa = pytest.importorskip("pyarrow")
pytest.importorskip("ray")

import pyarrow.parquet as pq  # noqa: E402

from apucodec.cli.main import cli  # noqa: E402
from apucodec.dataset import TokenDataset  # noqa: E402
from apucodec.dataset.encoder import CodecAdapter  # noqa: E402
from apucodec.dataset.shards import codes_from_bytes  # noqa: E402
from apucodec.io.apc_reader import read_apc  # noqa: E402
from apucodec.io.audio_read import read_audio  # noqa: E402
from tests.audio_factory import mixture  # noqa: E402
from tests.tokenize_helpers import BAD, cli_env, make_corpus, ray_head  # noqa: E402

SHARD_SIZE = 2


@pytest.fixture(scope="module")
def ray_address():
    with ray_head() as address:
        yield address


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_corpus(folder)


def tokenize_cmd(corpus_dir: Path, out: Path, address: str, model: Path) -> list[str]:
    return [sys.executable, "-m", "apucodec", "tokenize", str(corpus_dir), str(out), "--ray", address,
            "--workers", "2", "--threads", "1", "--shard-size", str(SHARD_SIZE), "--model", str(model)]


def visible_shards(out: Path) -> list[Path]:
    folder = out / "shards"
    return sorted(folder.glob("[0-9]*.parquet")) if folder.is_dir() else []


def rows(out: Path) -> list[dict]:
    return [row for path in visible_shards(out) for row in pq.read_table(path).to_pylist()]


def test_tokenize_killed_resumed_equals_encode(ray_address, corpus, runtime_model, tmp_path):
    corpus_dir, kinds = corpus
    out = tmp_path / "codes"
    total_shards = -(-len(kinds["good"]) // SHARD_SIZE)

    # 1. start the job; freeze the driver as soon as a shard is visible, then SIGKILL it (it dies mid-stream)
    log = (tmp_path / "killed.log").open("w")
    job = subprocess.Popen(tokenize_cmd(corpus_dir, out, ray_address, runtime_model), env=cli_env(), stdout=log,
                           stderr=log)
    deadline = time.monotonic() + 180
    while not visible_shards(out) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    job.send_signal(signal.SIGSTOP)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    before = rows(out)
    assert SHARD_SIZE <= len(before) < len(kinds["good"]), "the kill did not land midway"
    assert not (out / "dataset.json").exists()  # written only by a finished run
    stale = out / "shards" / ".00077.parquet.x1y2.tmp"  # as a kill during a shard write would leave it
    stale.write_bytes(b"PAR1 half a shard")

    # 2. resume: only the rest is encoded, the leftover temp file is gone and was never read
    command = tokenize_cmd(corpus_dir, out, ray_address, runtime_model)
    resumed = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = resumed.stdout.strip().splitlines()[-1]
    encoded = len(kinds["good"]) - len(before)
    assert f"tokenize: {encoded} encoded" in summary and f"{len(before)} already done" in summary, summary
    assert "1 duplicate content" in summary and f"{len(BAD)} failed" in summary, summary
    assert not stale.exists()
    after = rows(out)
    assert [r["sha256"] for r in after[: len(before)]] == [r["sha256"] for r in before]  # old shards untouched

    # 3. no loss, no duplicates: exactly the good files, each once (the duplicate's content counted once)
    paths = [r["path"] for r in after]
    assert sorted(paths) == sorted(kinds["good"])
    assert len({r["sha256"] for r in after}) == len(after)
    assert len(visible_shards(out)) <= total_shards + 1  # the killed run's last shard may be partial-sized

    # 4. every file's codes equal what the runtime encodes from the same file
    adapter = CodecAdapter(runtime_model, threads=1)
    by_path = {r["path"]: r for r in after}
    for rel in kinds["good"]:
        row = by_path[rel]
        samples, info = read_audio(corpus_dir / rel, adapter.sample_rate)
        expected = adapter.encode(samples)
        codes = codes_from_bytes(row["codes"], row["codebooks"], row["frames"])
        np.testing.assert_array_equal(codes, expected, err_msg=rel)
        assert row["samples"] == samples.size and row["sample_rate"] == info.sample_rate
        assert row["duration"] == pytest.approx(info.seconds) and row["model_id"] == adapter.model_id
    # ... and what `apucodec encode --mono` writes into an .apc (tokenize codes the channel average), for a resampled
    # stereo file, a FLAC and the 0.1 s clip
    for rel in ("short.wav", next(p for p in paths if p.endswith(".flac")), next(p for p in paths if "deep" in p)):
        apc = tmp_path / (Path(rel).stem + ".apc")
        result = CliRunner().invoke(cli, ["encode", str(corpus_dir / rel), str(apc), "--model", str(runtime_model),
                                          "--encoder-ep", "cpu", "--threads", "1", "--mono", "--precision", "fp32"])
        assert result.exit_code == 0, result.output
        _, apc_codes = read_apc(apc)
        row = by_path[rel]
        np.testing.assert_array_equal(codes_from_bytes(row["codes"], row["codebooks"], row["frames"]), apc_codes)

    # 5. the failures table and dataset.json
    failures = pq.read_table(out / "failures.parquet").to_pylist()
    assert sorted(f["path"] for f in failures) == sorted(BAD)
    for failure in failures:
        assert BAD[failure["path"]] in failure["reason"] and "\n" not in failure["reason"], failure
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["counts"]["items"] == len(kinds["good"]) and meta["counts"]["failures"] == len(BAD)
    assert meta["duplicates"][0]["path"] == kinds["duplicate"][0] and meta["model"]["model_id"] == adapter.model_id
    seconds = sum(r["duration"] for r in after)
    assert meta["totals"]["audio_seconds"] == pytest.approx(seconds, abs=1e-3)
    assert meta["totals"]["frames"] == sum(r["frames"] for r in after)

    # 6. idempotent: a rerun encodes nothing and writes no shard
    shards_before = visible_shards(out)
    again = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "tokenize: 0 encoded" in again.stdout and f"{len(after)} already done" in again.stdout, again.stdout
    assert visible_shards(out) == shards_before

    # 7. reading back: items as arrays, one decoded to audio
    dataset = TokenDataset(out)
    items = list(dataset)
    assert len(dataset) == len(items) == len(after)
    short = next(item for item in items if item.path == "short.wav")
    audio = dataset.decode(short)
    assert audio.shape == (short.samples,) and np.isfinite(audio).all() and np.abs(audio).max() > 0


@pytest.mark.slow
def test_tokenize_manifest_with_fewer_codebooks(ray_address, corpus, runtime_model, tmp_path):
    """A JSONL manifest (relative and absolute paths, one missing file) with --codebooks 2 and one worker."""
    corpus_dir, kinds = corpus
    chosen = kinds["good"][:6]
    manifest = tmp_path / "subset.jsonl"  # relative paths are relative to the manifest's folder
    relative = [os.path.relpath(corpus_dir / rel, tmp_path) for rel in chosen[:3]]
    lines = [{"path": p} for p in relative] + [{"path": str(corpus_dir / rel)} for rel in chosen[3:]]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in [*lines, {"path": "gone.wav"}]))
    out = tmp_path / "codes2"
    command = [sys.executable, "-m", "apucodec", "tokenize", str(manifest), str(out), "--ray", ray_address,
               "--workers", "1", "--codebooks", "2", "--model", str(runtime_model)]
    result = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tokenize: 6 encoded" in result.stdout and "1 failed" in result.stdout, result.stdout
    assert "skipped: gone.wav: cannot read" in result.stderr
    adapter = CodecAdapter(runtime_model, threads=1)
    found = {r["path"]: r for r in rows(out)}
    assert len(found) == 6
    for rel, as_listed in zip(chosen, [*relative, *(str(corpus_dir / rel) for rel in chosen[3:])], strict=True):
        row = found[as_listed]  # the path column holds the path as the manifest gives it
        samples, _ = read_audio(corpus_dir / rel, adapter.sample_rate)
        assert row["codebooks"] == 2
        np.testing.assert_array_equal(codes_from_bytes(row["codes"], 2, row["frames"]), adapter.encode(samples, 2))


@pytest.mark.slow
def test_tokenize_default_local_ray(runtime_model, tmp_path):
    """Without --ray the command starts a Ray of its own, uses it, and stops it."""
    corpus_dir = tmp_path / "few"
    corpus_dir.mkdir()
    for i in range(3):
        sf.write(corpus_dir / f"c{i}.wav", mixture(0.3 + 0.2 * i, seed=i), 44100)
    token = tmp_path / "token"
    token.write_text("0123456789abcdef" * 4)  # token auth with a token of its own: ~/.ray is left alone
    env = {**cli_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    command = [sys.executable, "-m", "apucodec", "tokenize", str(corpus_dir), str(tmp_path / "out"),
               "--model", str(runtime_model)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tokenize: 3 encoded" in result.stdout, result.stdout
    assert len(rows(tmp_path / "out")) == 3
