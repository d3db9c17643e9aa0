"""Parity with Meta's `encodec` package itself, run in its own interpreter (APUCODEC_TEST_REF_PYTHON).

The package builds an EnCodec-shaped model (the 24 kHz ratios and layout at toy width) with seeded random weights
and random codebooks, saves its state dict and writes its codes and decode; apucodec loads that state dict (family
recognised from the keys) and must produce the same codes and the same audio, in torch and through exported step
graphs streamed one frame at a time.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from apucodec.codec.checkpoint import checkpoint_family, load_encodec_checkpoint

REF_PYTHON = os.environ.get("APUCODEC_TEST_REF_PYTHON")
SCRIPT = Path(__file__).parent / "reference" / "encodec_reference.py"
pytestmark = pytest.mark.skipif(not REF_PYTHON, reason="APUCODEC_TEST_REF_PYTHON (an interpreter with the encodec "
                                                       "package, e.g. .ci/run's .venv-ref) is not set")
HOP = 320


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - est) ** 2.0), 1e-30)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("encodec-ref")
    rng = np.random.default_rng(3)
    t = np.arange(60 * HOP) / 24000
    clips = [(0.4 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32),
             (0.2 * rng.standard_normal(17 * HOP)).astype(np.float32)]
    paths = []
    for i, clip in enumerate(clips):
        paths.append(root / f"clip{i}.npy")
        np.save(paths[-1], clip)
    subprocess.run([REF_PYTHON, str(SCRIPT), "--out", str(root), "--audio", *map(str, paths), "--small",
                    "--n-q", "8"], check=True, capture_output=True, timeout=300)
    return root, clips, np.load(root / "ref.npz")


def test_torch_model_matches_the_package(reference):
    root, clips, ref = reference
    assert checkpoint_family(root / "encodec.th") == "encodec"
    model = load_encodec_checkpoint(root / "encodec.th")
    for i, clip in enumerate(clips):
        audio = torch.from_numpy(clip).view(1, 1, -1)
        with torch.no_grad():
            latent = model.encoder(audio)[0].numpy()
        assert _snr(ref[f"latent_{i}"], latent) > 100
        codes = model.encode(audio, 8)[0].numpy()
        assert (codes == ref[f"codes_{i}"]).mean(axis=1).min() >= 0.999
        decoded = model.decode(torch.from_numpy(ref[f"codes_{i}"])[None])[0, 0].numpy()
        assert _snr(ref[f"audio_{i}"], decoded) >= 60


def test_step_graphs_streamed_one_frame_at_a_time_match_the_package(reference):
    from apucodec.export.model_export import export_model
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    root, clips, ref = reference
    export_model(root / "encodec.th", root / "model", step_frames=(1, 64), simplify=False, log=None)
    codec = CodecEngine.open(root / "model", SessionSettings(step_frames=1, threads=1), stages=("encoder", "decoder"))
    for i, clip in enumerate(clips):
        codes, _ = codec.encode_array(clip, 8)
        assert (codes == ref[f"codes_{i}"]).mean(axis=1).min() >= 0.999
        decoded, _ = codec.decode_codes(ref[f"codes_{i}"], clip.size)
        assert _snr(ref[f"audio_{i}"], np.asarray(decoded).reshape(-1)) >= 60
