"""DAC parity against the reference package itself (descript-audio-codec), run in its own venv.

tests/reference/dac_reference.py, under APUCODEC_TEST_REF_PYTHON (the reference venv .ci/run builds), builds
`dac.DAC(...)` with DAC's own constructor and seeded random weights, saves it with `model.save(path,
package=False)`, and writes DAC's `encode(preprocess(x))` codes and its decode of them. Here that checkpoint goes
through `apucodec export`, and `apucodec encode --precision fp32` must give DAC's codes (>= 99.9% per codebook)
and decoding them DAC's audio (>= 60 dB SNR). Two small configs: an odd stride (16 kHz-style rates) and an even one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apucodec.dsp.metrics import snr_db
from apucodec.io.apc_reader import parse_apc

REF_PYTHON = os.environ.get("APUCODEC_TEST_REF_PYTHON")
SCRIPT = Path(__file__).resolve().parent / "reference" / "dac_reference.py"
CONFIGS = {
    "odd-stride": {"encoder_dim": 4, "encoder_rates": [2, 4, 5], "latent_dim": 16, "decoder_dim": 32,
                   "decoder_rates": [5, 4, 2], "n_codebooks": 4, "codebook_size": 64, "codebook_dim": 4,
                   "sample_rate": 16000},
    "even-default-latent": {"encoder_dim": 4, "encoder_rates": [2, 4, 8], "latent_dim": None, "decoder_dim": 32,
                            "decoder_rates": [8, 4, 2], "n_codebooks": 2, "codebook_size": 1024, "codebook_dim": 8,
                            "sample_rate": 44100},
}

pytestmark = pytest.mark.skipif(not REF_PYTHON, reason="APUCODEC_TEST_REF_PYTHON (the reference venv with "
                                "descript-audio-codec, built by .ci/run) unset")


def _cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-m", "apucodec", *args], check=True, env=env, capture_output=True)


@pytest.mark.parametrize("name", ["odd-stride", pytest.param("even-default-latent", marks=pytest.mark.slow)])
def test_apucodec_matches_the_dac_package(name, tmp_path):
    import soundfile as sf

    kwargs = CONFIGS[name]
    rate = kwargs["sample_rate"]
    rng = np.random.default_rng(7)
    n = int(0.7 * rate) + 13  # not a whole number of hops: DAC's preprocess pads, so must we
    t = np.arange(n) / rate
    audio = (0.4 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(n))
    audio = audio.astype(np.float32)
    np.save(tmp_path / "x.npy", audio)
    sf.write(tmp_path / "x.wav", audio, rate, subtype="FLOAT")
    subprocess.run([REF_PYTHON, str(SCRIPT), "--kwargs", json.dumps(kwargs), "--seed", "3", "--checkpoint",
                    str(tmp_path / "dac.pth"), "--out", str(tmp_path / "ref.npz"), str(tmp_path / "x.npy")],
                   check=True, capture_output=True)
    ref = np.load(tmp_path / "ref.npz")

    _cli("export", "--checkpoint", str(tmp_path / "dac.pth"), "--out", str(tmp_path / "model"),
         "--step-frames", "4,16")
    _cli("encode", str(tmp_path / "x.wav"), str(tmp_path / "x.apc"), "--model", str(tmp_path / "model"),
         "--precision", "fp32")
    header, codes = parse_apc((tmp_path / "x.apc").read_bytes())
    assert header.bits_per_code == int(np.ceil(np.log2(kwargs["codebook_size"])))
    expected = ref["codes_0"]
    assert codes.shape == expected.shape
    assert len(set(expected[0].tolist())) > 4  # many codewords in use, so agreement means something
    agreement = (codes == expected).mean(axis=1)
    assert np.all(agreement >= 0.999), f"per-codebook agreement {agreement}"

    from apucodec.runtime.codec_runner import CodecEngine
    from tests.runtime_models import CPU_ONLY

    codec = CodecEngine.open(tmp_path / "model", CPU_ONLY, warn=None)
    decoded, _ = codec.decode_codes(expected, n)
    dac_audio = ref["audio_0"]
    m = min(n, dac_audio.size)
    assert snr_db(dac_audio[:m], decoded[:m]) >= 60
