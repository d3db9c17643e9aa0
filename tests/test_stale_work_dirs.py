"""Work folders left by a SIGKILLed run are found by their owner's lock and removed by the next run (hardening round
three, class 6): export's `.NAME.partial-*`, quantize's `.quantize-cpu-*` inside the model directory, and
`apucodec-int8-*` in the temp directory. A live run's folder is never touched.

Each case really kills a process with SIGKILL while it holds a work folder made by the code path the command uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from apucodec.model.work_dirs import LOCK_NAME, UNLOCKED_GRACE_S, sweep_stale, work_dir
from tests.tokenize_helpers import cli_env

# Opens a work folder the way the named pass does, prints its path, then waits to be killed.
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    kind, where = sys.argv[1], Path(sys.argv[2])
    if kind == "export":
        from apucodec.model.passes import new_model_dir
        context = new_model_dir(where / "model", force=False)
    elif kind == "quantize":
        from apucodec.model.passes import staging_folder
        context = staging_folder(where, ".quantize-cpu-", where, "write into the model directory")
    else:
        import tempfile
        from apucodec.model.work_dirs import work_dir
        context = work_dir(tempfile.gettempdir(), "apucodec-int8-")
    with context as folder:
        print(folder, flush=True)
        time.sleep(600)
""")


def _hold(kind: str, where: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(where)], stdout=subprocess.PIPE, text=True,
                            env=env)
    line = proc.stdout.readline().strip()
    assert line, "the holder did not start"
    return proc, Path(line)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()


@pytest.mark.parametrize("kind, prefix", [("export", ".model.partial-"), ("quantize", ".quantize-cpu-"),
                                          ("int8", "apucodec-int8-")])
def test_a_sigkilled_runs_work_folder_is_removed_by_the_next_run(tmp_path, kind, prefix):
    env = {**cli_env(), "TMPDIR": str(tmp_path)}
    proc, folder = _hold(kind, tmp_path, env)
    (folder / "half-written.onnx").write_bytes(b"\0" * 1000)
    assert (folder / LOCK_NAME).is_file() and folder.name.startswith(prefix)
    _kill(proc)
    assert folder.is_dir()  # SIGKILL ran no cleanup: the leftover the issue describes
    second, fresh = _hold(kind, tmp_path, env)  # the next run of the same kind sweeps before it stages
    try:
        assert not folder.exists(), "the stale folder survived the next run"
        assert fresh.is_dir()
    finally:
        _kill(second)


def test_a_live_runs_work_folder_is_left_alone(tmp_path):
    env = {**cli_env(), "TMPDIR": str(tmp_path)}
    proc, folder = _hold("int8", tmp_path, env)
    try:
        assert sweep_stale(tmp_path, "apucodec-int8-") == [] and folder.is_dir()
    finally:
        _kill(proc)
    assert sweep_stale(tmp_path, "apucodec-int8-") == [folder] and not folder.exists()


def test_a_lockless_folder_is_removed_only_once_old(tmp_path):
    young, old = tmp_path / "apucodec-int8-young", tmp_path / "apucodec-int8-old"
    young.mkdir()
    old.mkdir()
    past = time.time() - UNLOCKED_GRACE_S - 60
    os.utime(old, (past, past))
    (tmp_path / "apucodec-int8-file").write_text("not a folder")  # never touched
    assert sweep_stale(tmp_path, "apucodec-int8-") == [old]
    assert young.is_dir() and (tmp_path / "apucodec-int8-file").is_file()


def test_a_work_folder_is_gone_after_an_exception(tmp_path):
    with pytest.raises(RuntimeError), work_dir(tmp_path, "apucodec-int8-") as folder:
        (folder / "x").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_published_model_directory_carries_no_lock_file(tmp_path):
    from apucodec.model.passes import new_model_dir

    with new_model_dir(tmp_path / "model", force=False) as stage:
        (stage / "manifest.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.slow
def test_a_sigkilled_export_leaves_a_partial_folder_that_the_next_export_removes(tiny_checkpoint, tmp_path):
    """The real command: `apucodec export` killed once its staging folder exists, then run again to completion."""
    command = [sys.executable, "-m", "apucodec", "export", "--checkpoint", str(tiny_checkpoint), "--out",
               str(tmp_path / "m"), "-q", "--step-frames", "4"]
    proc = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".m.partial-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    leftovers = list(tmp_path.glob(".m.partial-*"))
    assert leftovers, "the export finished before it could be killed"
    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
