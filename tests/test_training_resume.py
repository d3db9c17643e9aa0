"""Exact resume: a run interrupted after a checkpoint and resumed ends with bit-identical weights, codebooks and
optimizer state to the run that was never interrupted (tiny preset, CPU, same thread count)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from apucodec.codec.train import TrainSettings, train
from apucodec.contract.config import preset
from tests.audio_factory import write_folder

ROOT = Path(__file__).resolve().parents[1]


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("resume_audio"), seconds=3.0, count=2, kind="tonal")


def assert_same_training_state(path_a: Path, path_b: Path) -> None:
    a = torch.load(path_a, map_location="cpu", weights_only=True)
    b = torch.load(path_b, map_location="cpu", weights_only=True)
    assert a["step"] == b["step"]
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), f"{name} differs after resuming"
    for pid, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][pid][key]), f"optimizer {pid}.{key} differs"
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])


def settings(steps: int, checkpoint_every: int) -> TrainSettings:
    return TrainSettings(steps=steps, batch_size=2, segment_seconds=0.25, lr=1e-3, warmup_steps=3, val_every=5,
                         log_every=5, checkpoint_every=checkpoint_every)


def test_interrupted_run_resumes_bit_identical(data_dir, tmp_path):
    torch.set_num_threads(1)
    straight = tmp_path / "straight.pt"
    train(data_dir, straight, preset("tiny"), settings(12, 1000), log=lambda m: None)

    def stop_at_7(step: int, _status: str | None) -> None:
        if step == 7:
            raise Interrupted

    resumed = tmp_path / "resumed.pt"
    with pytest.raises(Interrupted):
        train(data_dir, resumed, preset("tiny"), settings(12, 4), log=lambda m: None, progress=stop_at_7)
    assert torch.load(resumed, weights_only=True)["step"] == 4
    train(data_dir, resumed, settings=settings(12, 4), resume=resumed, log=lambda m: None)
    assert_same_training_state(straight, resumed)


def _cli(out: Path, data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "apucodec", "train", str(data_dir), "--preset", "tiny", "--steps", "30",
            "--batch-size", "2", "--segment-seconds", "0.25", "--warmup-steps", "5", "--checkpoint-every", "5",
            "--val-every", "1000", "--out", str(out), *extra]


def test_killed_run_resumes_bit_identical(data_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    victim_ckpt = tmp_path / "victim.pt"
    victim = subprocess.Popen(_cli(victim_ckpt, data_dir), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not victim_ckpt.exists() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(victim_ckpt, weights_only=True)["step"]
    assert 0 < killed_at < 30

    reference = tmp_path / "reference.pt"
    subprocess.run(_cli(reference, data_dir), env=env, check=True, capture_output=True)
    subprocess.run(_cli(victim_ckpt, data_dir, "--resume", str(victim_ckpt)), env=env, check=True,
                   capture_output=True)
    assert_same_training_state(reference, victim_ckpt)
