"""Bad input to `apucodec export`: one `error:` line naming the file, exit 1, and no model directory or staging
folder left behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from apucodec.codec.model import APUCodec
from apucodec.contract.config import preset
from apucodec.errors import ApucodecError
from apucodec.export import export_model, parity
from tests.cli_helpers import assert_one_line_error, invoke
from tests.export_helpers import leftovers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class NotATensor:
    """Any class: weights_only=True refuses to rebuild it."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def run_export(checkpoint: Path, out: Path, *extra: str):
    return invoke("export", "--checkpoint", str(checkpoint), "--out", str(out), *extra)


def assert_export_error(result, *fragments: str) -> None:
    assert_one_line_error(result, *fragments, progress="[export] ")


def tiny_payload() -> dict:
    model = APUCodec(preset("tiny"))
    return {"config": model.config.to_dict(), "state_dict": model.state_dict(), "step": 0}


def _bad_checkpoints(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (checkpoint path, a fragment the error must contain)"""
    cases: dict[str, tuple[Path, str]] = {"missing": (tmp / "absent.pt", "no such checkpoint")}
    garbage = tmp / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file at all" * 10)
    cases["not_torch"] = (garbage, "not a PyTorch checkpoint")
    refused = tmp / "pickled.pt"
    torch.save({"config": {}, "state_dict": {}, "extra": NotATensor()}, refused)
    cases["weights_only_refused"] = (refused, "weights_only=True")
    wrong_keys = tmp / "wrong_keys.pt"
    torch.save({"weights": torch.zeros(3)}, wrong_keys)
    cases["wrong_keys"] = (wrong_keys, "not an APU-Codec checkpoint")
    payload = tiny_payload()
    del payload["state_dict"]["decoder.output_conv.bias"]
    missing_key = tmp / "missing_key.pt"
    torch.save(payload, missing_key)
    cases["missing_key"] = (missing_key, "checkpoint lacks")  # names the key and its shape
    payload = tiny_payload()
    payload["state_dict"]["encoder.input_conv.bias"] = torch.zeros(5)
    bad_shape = tmp / "bad_shape.pt"
    torch.save(payload, bad_shape)
    cases["bad_shape"] = (bad_shape, "in the checkpoint, but its config asks for")
    return cases


@pytest.mark.parametrize("case", ["missing", "not_torch", "weights_only_refused", "wrong_keys", "missing_key",
                                  "bad_shape"])
def test_bad_checkpoints_fail_in_one_line(case, tmp_path):
    checkpoint, fragment = _bad_checkpoints(tmp_path)[case]
    out = tmp_path / "out" / "model"
    result = run_export(checkpoint, out)
    assert_export_error(result, str(checkpoint), fragment)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_non_empty_output_folder_is_refused_without_force(tiny_checkpoint, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_export_error(run_export(tiny_checkpoint, out), str(out), "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_output_path_that_is_a_file_is_refused(tiny_checkpoint, tmp_path):
    out = tmp_path / "model"
    out.write_text("a file")
    assert_export_error(run_export(tiny_checkpoint, out), str(out), "not a folder")


def test_unwritable_output_location(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    out = blocker / "model"
    assert_export_error(run_export(tiny_checkpoint, out), str(out), "cannot write")


@pytest.mark.parametrize("args,fragment", [(["--step-frames", "0"], "--step-frames"),
                                           (["--step-frames", "4,x"], "--step-frames takes whole numbers"),
                                           (["--step-frames", ","], "at least one step size"),
                                           (["--opset", "11"], "--opset 11")])
def test_bad_options(args, fragment, tiny_checkpoint, tmp_path):
    out = tmp_path / "model"
    assert_export_error(run_export(tiny_checkpoint, out, *args), fragment)
    assert not out.exists() and leftovers(tmp_path) == []


def test_disk_full_while_writing_leaves_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    import numpy as np

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "model"
    assert_export_error(run_export(tiny_checkpoint, out), str(out), "No space left on device")
    assert not out.exists() and leftovers(tmp_path) == []


def test_parity_below_threshold_refuses_the_export(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(parity, "MIN_SNR_DB", 1000.0)  # no real graph reaches 1000 dB: the guard must fire
    out = tmp_path / "model"
    with pytest.raises(ApucodecError, match=r"encoder\.s4\.onnx: streamed ONNX output differs from whole-file"):
        export_model(tiny_checkpoint, out, step_frames=(4,), log=None)
    assert not out.exists() and leftovers(tmp_path) == []
