"""Two gloo ranks on the CPU, launched the way users launch them (torch.distributed.run, i.e. torchrun), end with
bit-identical parameters and codebooks although each trained on its own shard; only rank 0 writes the checkpoint."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.audio_factory import write_folder
from tests.ddp_worker import digest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("ddp_audio"), seconds=3.0, count=2, kind="tonal")


def test_two_gloo_ranks_end_identical(data_dir, tmp_path):
    run = torchrun([str(ROOT / "tests" / "ddp_worker.py"), str(data_dir), str(tmp_path), "6"])
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["codebooks"] == ranks[1]["codebooks"], "codebooks diverged between ranks"
    assert ranks[0]["state"] == ranks[1]["state"], "parameters or buffers diverged between ranks"
    # Each rank read its own shard: their first losses differ (identical data would give identical losses).
    assert ranks[0]["first_loss"] != ranks[1]["first_loss"]
    # Only rank 0 wrote, and what it wrote is what both ranks hold.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "rank0.json", "rank1.json"]
    saved = torch.load(tmp_path / "ckpt.pt", map_location="cpu", weights_only=True)
    assert digest(saved["state_dict"]) == ranks[0]["state"]
    assert saved["world_size"] == 2 and len(saved["rng"]) == 2
    assert "effective batch 4 (2 x 2)" in run.stderr
    assert run.stderr.count("step 1/6") == 1, "a rank other than 0 logged"


def test_torchrun_cli(data_dir, tmp_path):
    out = tmp_path / "c.pt"
    run = torchrun(["-m", "apucodec", "train", str(data_dir), "--preset", "tiny", "--steps", "3", "--batch-size", "2",
                    "--segment-seconds", "0.25", "--out", str(out)])
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.exists() and run.stdout.count("wrote ") == 1
    assert "data parallel: 2 ranks (gloo)" in run.stderr
    assert "Warning" not in run.stderr, run.stderr  # torch's DDP deprecation notice used to print once per rank
