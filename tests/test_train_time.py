"""Training that tells the time: steps/s and ETA from the first steps, one CPU warning when the run takes hours,
Ctrl-C that leaves a resumable checkpoint, and --resume that keeps the run's settings (tiny preset, seconds)."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from apucodec.codec.resume_settings import resumed_settings
from apucodec.codec.train import TrainSettings, train
from apucodec.codec.train_pace import Pace, cpu_warning, format_duration
from apucodec.codec.train_stop import CheckpointClock, StopRequests
from apucodec.contract.config import preset
from tests.audio_factory import write_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("time_audio"), seconds=2.0, count=2, kind="tonal")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pace_measures_after_the_first_step_and_reports_by_time():
    clock = FakeClock()
    pace = Pace(0, 1000, report_seconds=60, clock=clock)
    clock.now += 10.0  # the first step carries one-off costs
    pace.step_done(1)
    assert pace.seconds_per_step() == pytest.approx(10.0)
    assert pace.report_due()
    clock.now += 2.0
    pace.step_done(2)
    assert pace.seconds_per_step() == pytest.approx(2.0)  # measured from the end of step 1
    assert pace.eta_seconds() == pytest.approx(2.0 * 998)
    assert pace.line() == "step 2/1000: 2.0 s/step, ETA 33 min"
    clock.now += 2.0
    pace.step_done(3)
    assert not pace.report_due()  # step 3, 2 s after the last line
    clock.now += 60.0
    pace.step_done(4)
    assert pace.report_due()


def test_pace_eta_is_capped_by_the_time_budget():
    clock = FakeClock()
    pace = Pace(0, 10_000, clock=clock, budget_seconds=120.0)
    clock.now += 1.0
    pace.step_done(1)
    assert pace.eta_seconds() == pytest.approx(119.0)


def test_format_duration():
    assert [format_duration(s) for s in (45, 12 * 60, 3.4 * 3600, 12 * 86400)] == ["45 s", "12 min", "3.4 h",
                                                                                  "12 days"]


def test_cpu_warning_names_a_preset_that_fits():
    assert cpu_warning(preset("small"), 0.1, 20_000, 16) is None  # 33 min: no warning
    warning = cpu_warning(preset("default"), 30.0, 20_000, 16)  # 7 days
    assert warning.startswith("warning: on the CPU this run takes about 7 days")
    assert "--preset tiny would take about" in warning
    warning = cpu_warning(preset("default"), 0.5, 20_000, 16)  # 2.8 h: small is ~16x cheaper
    assert "--preset small would take about" in warning
    assert "--steps" in cpu_warning(preset("tiny"), 1.0, 20_000, 16)  # nothing smaller to name


def test_stop_requests_defer_the_first_signal_and_let_the_second_through():
    # Python's own SIGINT handler underneath, whatever an earlier test in this process installed (Ray's import
    # installs its own): the second signal must reach the handler that was there before.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        lines = []
        with StopRequests(lines.append) as stops:
            os.kill(os.getpid(), signal.SIGINT)
            assert stops.requested == "SIGINT" and "writing a checkpoint" in lines[0]
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_checkpoint_clock():
    clock = FakeClock()
    every = CheckpointClock(10, clock=clock)
    clock.now += 599
    assert not every.due()
    clock.now += 1
    assert every.due()
    every.written()
    assert not every.due()
    assert not CheckpointClock(None, clock=clock).due()


def test_a_signal_mid_run_checkpoints_and_the_run_resumes(data_dir, tmp_path):
    out = tmp_path / "ckpt.pt"
    settings = TrainSettings(steps=10_000, batch_size=2, segment_seconds=0.25, warmup_steps=2, val_every=10_000,
                             log_every=10_000, checkpoint_every=10_000, checkpoint_minutes=None)
    lines = []

    def progress(step: int, _status: str | None) -> None:
        if step == 3:
            threading.Timer(0, os.kill, (os.getpid(), signal.SIGINT)).run()

    result = train(data_dir, out, preset("tiny"), settings, log=lines.append, progress=progress)
    assert result.interrupted == "SIGINT" and result.steps_done == 3
    saved = torch.load(out, weights_only=True)
    assert saved["step"] == 3 and saved["settings"]["batch_size"] == 2
    assert any("stopped at step 3/10000" in line for line in lines)
    settings.steps = 5
    resumed = train(data_dir, out, settings=settings, resume=out, log=lines.append)
    assert resumed.interrupted is None and resumed.steps_done == 2
    assert torch.load(out, weights_only=True)["step"] == 5


def test_resume_keeps_the_runs_settings_and_says_what_changed(data_dir, tmp_path):
    out = tmp_path / "ckpt.pt"
    train(data_dir, out, preset("tiny"), TrainSettings(steps=2, batch_size=3, segment_seconds=0.25, lr=1e-3,
                                                       warmup_steps=1), log=lambda m: None)
    settings, lines = resumed_settings(out, TrainSettings(steps=4), {"steps"})
    assert (settings.batch_size, settings.lr, settings.segment_seconds, settings.steps) == (3, 1e-3, 0.25, 4)
    assert "keeping its" in lines[0] and "batch_size 3" in lines[0]
    assert lines[1] == "changed from the checkpoint's run: steps 2 -> 4"
    with pytest.raises(Exception, match="another model"):
        resumed_settings(out, TrainSettings(), set(), preset("small"))


def _cli(out: Path, data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "apucodec", "train", str(data_dir), "--out", str(out), "--preset", "tiny",
            "--segment-seconds", "0.25", "--val-every", "100000000", "--log-every", "100000000", *extra]


def test_cli_first_lines_tell_the_time_and_ctrl_c_leaves_a_resumable_checkpoint(data_dir, tmp_path):
    """The first lines of a CPU run give the ETA and one warning (a million tiny steps take hours); SIGINT (what
    Ctrl-C sends) writes a checkpoint and exits 130; --resume continues it with its own batch size."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ckpt.pt"
    proc = subprocess.Popen(_cli(out, data_dir, "--steps", "1000000", "--batch-size", "2", "--device", "cpu"),
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("warning:"):
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    seen += rest.splitlines(keepends=True)
    text = "".join(seen)
    assert "step 1/1000000" in text and "ETA" in text and "step 2/1000000:" in text, text
    assert sum(line.startswith("warning:") for line in seen) == 1
    assert "fits in an hour" in text
    assert proc.returncode == 130
    saved = torch.load(out, weights_only=True)
    assert saved["step"] >= 2 and saved["settings"]["batch_size"] == 2
    step = saved["step"]
    resumed = subprocess.run(_cli(out, data_dir, "--resume", str(out), "--steps", str(step + 1)), env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "keeping its" in resumed.stderr and "batch_size 2" in resumed.stderr
    assert f"changed from the checkpoint's run: steps 1000000 -> {step + 1}" in resumed.stderr
    assert torch.load(out, weights_only=True)["step"] == step + 1
