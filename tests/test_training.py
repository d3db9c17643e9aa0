"""Training on generated audio: the loss falls, every codebook learns, quantization error falls — the three things
the original APU-Codec training got wrong (its codebooks never left their random initialisation)."""

import pytest
import torch
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.codec.checkpoint import load_checkpoint
from apucodec.codec.train import TrainSettings, train
from apucodec.contract.config import preset
from tests.audio_factory import write_folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("train_audio"), seconds=4.0, count=3, kind="tonal")


@pytest.mark.slow  # 200 training steps: minutes on a busy 2-core CPU
def test_tiny_codec_learns_on_generated_audio(data_dir, tmp_path):
    torch.set_num_threads(2)
    ckpt = tmp_path / "tiny.pt"
    settings = TrainSettings(steps=1, batch_size=4, segment_seconds=0.25, lr=1e-3, warmup_steps=10, val_every=50,
                             log_every=10, checkpoint_every=1000)
    first = train(data_dir, ckpt, preset("tiny"), settings, log=lambda m: None)
    start_codebooks = load_checkpoint(ckpt).model.quantizer.codebooks.clone()  # after the data-driven init

    settings.steps = 200
    rest = train(data_dir, ckpt, settings=settings, resume=ckpt, log=lambda m: None)
    model = load_checkpoint(ckpt).model
    assert load_checkpoint(ckpt).step == 200

    early, late = first.validation[-1]["loss"], rest.validation[-1]["loss"]  # same held-out segments
    assert late < 0.75 * early, f"held-out loss did not fall clearly: {early:.3f} -> {late:.3f}"

    moved = (model.quantizer.codebooks - start_codebooks).norm(dim=(1, 2)) / start_codebooks.norm(dim=(1, 2))
    assert (moved > 0.05).all(), f"some codebook stayed at its initial values: relative change {moved.tolist()}"

    q_start = first.validation[-1]["quant_error"]
    q_end = rest.validation[-1]["quant_error"]
    assert q_end < q_start, f"relative quantization error did not fall: {q_start:.4f} -> {q_end:.4f}"
    print(f"loss {early:.3f} -> {late:.3f}; codebook change {[round(m, 3) for m in moved.tolist()]}; "
          f"quantization error {q_start:.4f} -> {q_end:.4f}; {rest.seconds:.1f} s")


def test_train_cli_reports_bad_data_in_one_line(tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not audio")
    short = write_folder(tmp_path / "short", seconds=0.2, count=1)
    cases = {
        str(empty): "no decodable audio",
        str(junk): "no decodable audio",
        str(tmp_path / "missing"): "no such folder",
        str(short): "shorter than one training segment",
    }
    for folder, expected in cases.items():
        result = runner.invoke(cli, ["train", folder, "--out", str(tmp_path / "c.pt"), "--preset", "tiny",
                                     "--steps", "1"])
        assert result.exit_code == 1, result.output
        last_line = result.output.strip().splitlines()[-1]
        assert last_line.startswith("error: ") and expected in last_line
        assert "Traceback" not in result.output


def test_train_cli_unwritable_output(tmp_path):
    data = write_folder(tmp_path / "data", seconds=2.0, count=1)
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(data), "--out", str(data), "--preset", "tiny", "--steps", "1",
                                 "--segment-seconds", "0.25"])
    assert result.exit_code == 1 and "is a directory" in result.output
    result = runner.invoke(cli, ["train", str(data), "--out", "/proc/nope/c.pt", "--preset", "tiny", "--steps", "1",
                                 "--segment-seconds", "0.25", "--batch-size", "2"])
    assert result.exit_code == 1 and "cannot write checkpoint" in result.output, result.output
