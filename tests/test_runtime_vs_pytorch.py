"""The step-graph runtime against the PyTorch codec it was exported from, run on the whole clip at once (same
weights), at every sample, the file's ends included. Needs torch (the reference); the rest of the runtime's end to
end tests (test_runtime_pipeline.py) run without it."""

from __future__ import annotations

import numpy as np
import pytest

from apucodec.runtime.codec_runner import CodecEngine
from tests.audio_factory import chirp, noise_bursts, speech_like
from tests.runtime_models import CPU_ONLY, assert_codes_equal_ties_aside, export_tiny, whole_file_reference

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("runtime") / "model")


@pytest.fixture(scope="module")
def codec(tiny):
    return CodecEngine.open(tiny.path, CPU_ONLY, warn=None)


def _clip(seconds: float = 3.0) -> np.ndarray:
    # An odd length (not a multiple of the hop) exercises the padded last frame and the trimmed last window.
    n = int(seconds * 44100) + 123
    x = np.concatenate([speech_like(seconds), chirp(0.01)])[:n] + 0.5 * noise_bursts(seconds + 0.01)[:n]
    return x.astype(np.float32)


def _whole_file_latents(model, audio: np.ndarray) -> np.ndarray:
    frames = -(-audio.size // 512)
    padded = np.zeros(frames * 512, dtype=np.float32)
    padded[: audio.size] = audio
    with torch.no_grad():
        return model.encoder(torch.from_numpy(padded)[None, None])[0].numpy().T


def test_streamed_run_matches_the_whole_file_pytorch_codec(tiny, codec):
    """Each stage of the step-graph runtime against the PyTorch codec run on the whole clip at once (same weights),
    at every sample: the file's ends included."""
    audio = _clip()
    out, result = codec.run_array(audio)
    assert out.shape == audio.shape
    assert result.steps > 10  # many step boundaries inside the clip

    # Encoder: the streamed step graph vs the whole-file torch encoder.
    stepper = codec.stepper("encoder")
    rows = np.concatenate([stepper.push(audio[None, :7000]), stepper.push(audio[None, 7000:]), stepper.finish()],
                          axis=1).T
    latents = _whole_file_latents(tiny.torch_model, audio)
    assert rows.shape == latents.shape
    assert np.max(np.abs(rows - latents)) < 1e-5 * max(1.0, np.abs(latents).max())

    # RVQ on real encoder output: the same codes as torch, ties aside (this tiny model's codebooks hold
    # near-duplicate codewords, so ties do happen).
    ref_codes, _ = whole_file_reference(tiny.torch_model, audio)
    codes, _ = codec.encode_array(audio)
    ties = assert_codes_equal_ties_aside(codec.rvq.codebooks, latents, codes, ref_codes)
    assert ties <= 0.05 * codes.shape[1]

    # Decoder: `run`'s output is the streamed decoder on these codes; compare it with the whole-file torch decoder.
    with torch.no_grad():
        latent = tiny.torch_model.quantizer.dequantize(torch.from_numpy(codes.astype(np.int64))[None])
        ref_audio = tiny.torch_model.decoder(latent)[0, 0, : audio.size].numpy()
    error = np.max(np.abs(out - ref_audio))
    assert error < 1e-4, error
    assert np.abs(ref_audio).max() > 1e-3  # not a comparison of silences
