"""Exact streaming: `run` through the step graphs equals the whole-file PyTorch codec at every sample.

A property test over input lengths (1 sample to several steps, odd lengths) and step sizes {1, 4, 16, 128}, on a
non-causal and a causal tiny model: the streamed latents equal the whole-file encoder's, and the streamed audio
equals the whole-file decoder run on the same codes, edges included (max abs error <= 1e-4); encode -> decode
equals `run` bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apucodec.runtime.codec_runner import CodecEngine
from tests.runtime_models import CPU_ONLY, export_tiny

torch = pytest.importorskip("torch")

STEPS = (1, 4, 16, 128)
HOP = 512


@pytest.fixture(scope="module", params=["tiny", "tiny-causal"])
def streaming_model(request, tmp_path_factory):
    tiny = export_tiny(tmp_path_factory.mktemp(request.param) / "model", seed=3, step_frames=STEPS,
                       preset_name=request.param)
    codecs = {s: CodecEngine.open(tiny.path, CPU_ONLY, warn=None, step_frames=s) for s in STEPS}
    return tiny, codecs


def _signal(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 44100
    x = 0.3 * np.sin(2 * np.pi * (150 + 40 * rng.random()) * t) + 0.1 * rng.standard_normal(length)
    return x.astype(np.float32)


def _whole_file(model, audio: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The torch encoder on the hop-padded signal ([frames, latent]), and the torch decoder on `codes`."""
    frames = -(-audio.size // HOP)
    padded = np.zeros(frames * HOP, dtype=np.float32)
    padded[: audio.size] = audio
    with torch.no_grad():
        latent = model.encoder(torch.from_numpy(padded)[None, None])[0].numpy().T
        quantized = model.quantizer.dequantize(torch.from_numpy(codes.astype(np.int64))[None])
        recon = model.decoder(quantized)[0, 0, : audio.size].numpy()
    return latent, recon


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.sampled_from(STEPS), data=st.data())
def test_run_equals_whole_file_pytorch_at_every_sample(streaming_model, step, data):
    tiny, codecs = streaming_model
    codec = codecs[step]
    # From one sample to a few steps (odd lengths, partial last frames, shorter than the delay).
    length = data.draw(st.integers(1, (3 * step + 20) * HOP + HOP - 1), label="length")
    audio = _signal(length, seed=length)

    out, result = codec.run_array(audio)
    assert out.shape == audio.shape and out.dtype == np.float32
    codes, _ = codec.encode_array(audio)
    assert codes.shape[1] == -(-length // HOP)
    decoded, _ = codec.decode_codes(codes, length)
    np.testing.assert_array_equal(decoded, out)  # encode -> decode is run, bit for bit

    latent_ref, audio_ref = _whole_file(tiny.torch_model, audio, codes)
    stepper = codec.stepper("encoder")
    streamed_latent = np.concatenate([stepper.push(audio[None]), stepper.finish()], axis=1).T
    assert np.max(np.abs(streamed_latent - latent_ref)) <= 1e-4
    assert np.max(np.abs(out - audio_ref)) <= 1e-4, "streamed audio differs from whole-file decoding"
    assert result.steps >= 1


def test_causal_model_has_zero_lookahead(streaming_model):
    tiny, codecs = streaming_model
    streaming = codecs[4].model.manifest.streaming
    latency = streaming.algorithmic_latency["4"]["samples"]
    if tiny.torch_model.config.causal:
        assert streaming.encoder.delay_samples == streaming.decoder.delay_samples == 0
        assert latency == 4 * HOP
    else:
        assert streaming.encoder.delay_samples > 0 and latency > 4 * HOP
