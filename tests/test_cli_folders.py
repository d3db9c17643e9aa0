"""`apucodec encode|decode|run DIR OUTDIR` (a corrupt file inside fails alone, finished files are skipped) and
stereo files kept per channel through encode/decode (bundled model, torch-free)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from click.testing import CliRunner

import apucodec
from apucodec.cli.main import cli


def _tone(n: int, rate: int, f: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * f * np.arange(n) / rate)).astype(np.float32)


def test_folder_encode_decode_run_with_a_corrupt_file(tmp_path):
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    sf.write(clips / "a.wav", _tone(30000, 44100, 220), 44100)
    sf.write(clips / "sub" / "b.flac", np.stack([_tone(20000, 48000, 330), _tone(20000, 48000, 440)], 1), 48000)
    (clips / "sub" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    runner = CliRunner()
    first = runner.invoke(cli, ["encode", str(clips), str(tmp_path / "codes"), "--threads", "1"])
    assert first.exit_code == 1, first.output
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0] and "Traceback" not in first.output
    assert "2 done, 0 already done, 1 failed" in first.stdout
    assert (tmp_path / "codes" / "a.apc").is_file() and (tmp_path / "codes" / "sub" / "b.apc").is_file()
    assert not (tmp_path / "codes" / "sub" / "broken.apc").exists()
    stereo = apucodec.Codes.load(tmp_path / "codes" / "sub" / "b.apc")
    assert stereo.channels == 2 and stereo.precision == "cpu-int8"  # the CLI default (auto) on a CPU, recorded
    again = runner.invoke(cli, ["encode", str(clips), str(tmp_path / "codes")])
    assert "0 done, 2 already done, 1 failed" in again.stdout  # finished files are skipped
    decoded = runner.invoke(cli, ["decode", str(tmp_path / "codes"), str(tmp_path / "wav")])
    assert decoded.exit_code == 0, decoded.output
    audio, rate = sf.read(tmp_path / "wav" / "sub" / "b.wav")
    assert rate == 44100 and audio.shape == (stereo.length, 2)
    ran = runner.invoke(cli, ["run", str(clips), str(tmp_path / "out"), "--mono"])
    assert ran.exit_code == 1 and "2 done" in ran.stdout
    assert sf.info(tmp_path / "out" / "sub" / "b.wav").channels == 1


def test_stereo_file_round_trip_keeps_channels_each_equal_to_coding_it_alone(tmp_path):
    left, right = _tone(25000, 44100, 200), _tone(25000, 44100, 500) * 0.5
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1), 44100, subtype="FLOAT")
    sf.write(tmp_path / "r.wav", right, 44100, subtype="FLOAT")
    runner = CliRunner()
    for src, dst in (("st.wav", "st.apc"), ("r.wav", "r.apc")):
        done = runner.invoke(cli, ["encode", str(tmp_path / src), str(tmp_path / dst)])
        assert done.exit_code == 0, done.output
    both, alone = apucodec.Codes.load(tmp_path / "st.apc"), apucodec.Codes.load(tmp_path / "r.apc")
    np.testing.assert_array_equal(both.array[1], alone.array)
    done = runner.invoke(cli, ["decode", str(tmp_path / "st.apc"), str(tmp_path / "st_out.wav")])
    assert done.exit_code == 0, done.output
    runner.invoke(cli, ["decode", str(tmp_path / "r.apc"), str(tmp_path / "r_out.wav")])
    a, _ = sf.read(tmp_path / "st_out.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "r_out.wav", dtype="int16")
    assert a.shape == (25000, 2)
    np.testing.assert_array_equal(a[:, 1], b)
