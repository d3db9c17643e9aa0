"""Window cutting, padding and stitching, checked with reshaping "networks" whose output is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apucodec.model_dir import WindowGeometry
from apucodec.runtime.windows import (
    FrameWindower,
    SampleWindower,
    frame_windows,
    frames_for_length,
    kept_frames,
    kept_samples,
    sample_windows,
    window_count,
)


def _fake_encoder(samples: np.ndarray, g: WindowGeometry) -> np.ndarray:
    """[window_samples] -> [1, hop, W]: frame f holds its own hop samples, so frames carry their position."""
    return samples.reshape(g.window_frames, g.hop).T[None]


def _fake_decoder(latent: np.ndarray, g: WindowGeometry) -> np.ndarray:
    """The inverse reshape: [hop, W] -> [1, 1, window_samples]."""
    return latent.T.reshape(1, 1, -1)


def _stitch(audio: np.ndarray, g: WindowGeometry, block: int) -> np.ndarray:
    """The whole runtime path with the fake networks, fed in `block`-sized pieces."""
    enc = SampleWindower(g)
    dec = FrameWindower(g, g.hop)
    out = []

    def decode(windows):
        for w in windows:
            out.append(kept_samples(_fake_decoder(w.latent, g), w, g))

    for start in range(0, audio.size, block):
        for w in enc.push(audio[start: start + block]):
            decode(dec.push(kept_frames(_fake_encoder(w.samples, g), w, g)))
    for w in enc.finish():
        decode(dec.push(kept_frames(_fake_encoder(w.samples, g), w, g)))
    decode(dec.finish(audio.size))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@settings(max_examples=120, deadline=None)
@given(hop=st.sampled_from([1, 4, 8]), chunk=st.integers(1, 6), context=st.integers(0, 7),
       length=st.integers(1, 400), block=st.integers(1, 97))
def test_stitching_reproduces_the_input_exactly(hop, chunk, context, length, block):
    g = WindowGeometry(hop=hop, window_frames=chunk + 2 * context, context_frames=context)
    audio = np.arange(1, length + 1, dtype=np.float32)
    out = _stitch(audio, g, block)
    assert out.shape == audio.shape
    np.testing.assert_array_equal(out, audio)


def test_windows_carry_context_and_zero_padding():
    g = WindowGeometry(hop=2, window_frames=7, context_frames=2)  # chunk 3 frames = 6 samples
    audio = np.arange(1, 15, dtype=np.float32)  # 14 samples -> 7 frames -> 3 windows
    windows = sample_windows(audio, g)
    assert len(windows) == window_count(audio.size, g) == 3
    assert [w.keep_frames for w in windows] == [3, 3, 1]
    # window 0 starts two frames (4 samples) before the file: zeros, then the audio
    np.testing.assert_array_equal(windows[0].samples, [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    # window 1 starts at frame 1: samples 3..16 (1-based), the last past the end zero-padded
    np.testing.assert_array_equal(windows[1].samples, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0, 0])
    np.testing.assert_array_equal(windows[2].samples[:4], [9, 10, 11, 12])
    assert all(w.samples.shape == (g.window_samples,) for w in windows)


def test_decoder_windows_and_last_window_trim():
    g = WindowGeometry(hop=4, window_frames=5, context_frames=1)
    rows = np.arange(1, 8, dtype=np.float32)[:, None].repeat(2, axis=1)  # 7 frames, latent dim 2
    windows = frame_windows(rows, total_samples=26, geometry=g)  # 26 samples -> 7 frames
    assert [w.keep_samples for w in windows] == [12, 12, 2]
    np.testing.assert_array_equal(windows[0].latent[0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(windows[2].latent[0], [6, 7, 0, 0, 0])
    assert windows[1].latent.shape == (2, 5)


def test_a_window_is_emitted_as_soon_as_its_samples_arrived():
    g = WindowGeometry(hop=1, window_frames=4, context_frames=1)  # chunk 2
    windower = SampleWindower(g)
    assert list(windower.push(np.ones(2, np.float32))) == []
    assert [w.index for w in windower.push(np.ones(1, np.float32))] == [0]  # needs samples up to chunk+context
    assert [w.index for w in windower.push(np.ones(4, np.float32))] == [1, 2]


def test_memory_stays_one_window_whatever_the_length():
    g = WindowGeometry(hop=8, window_frames=10, context_frames=3)
    windower = SampleWindower(g)
    for _ in range(2000):
        list(windower.push(np.ones(50, np.float32)))
        assert windower._stream.data.size <= g.window_samples + 50


def test_frame_count_mismatch_is_an_error():
    g = WindowGeometry(hop=4, window_frames=3, context_frames=1)
    windower = FrameWindower(g, 1)
    list(windower.push(np.zeros((2, 1), np.float32)))
    with pytest.raises(ValueError, match="cover"):
        list(windower.finish(total_samples=20))
    assert frames_for_length(9, 4) == 3
