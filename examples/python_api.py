"""The apucodec Python API in a few lines: one-shot encode/decode of arrays at any rate, files, and a live stream.

    python examples/python_api.py [MODEL_DIR]      # default: $APUCODEC_MODEL, ./apucodec-model, the bundled model
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import apucodec
from apucodec.audio_input import to_codec_input


def main(model: str | None = None) -> None:
    # step_frames=4: the live step graphs for everything here, so the stream below equals one-shot bit for bit
    # (the default, the offline step, agrees with it to float rounding).
    codec = apucodec.load(model, encoder_ep="cpu", decoder_ep="cpu", step_frames=4)

    # Any rate, any channel count, float or integer PCM: here 1.5 s of 48 kHz stereo int16.
    t = np.arange(int(1.5 * 48000)) / 48000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    stereo = (np.stack([tone, 0.5 * tone], axis=1) * 32767).astype(np.int16)
    codes = codec.encode(stereo, sample_rate=48000)
    print(f"{codes.n_codebooks} x {codes.frames} codes for {codes.seconds:.2f} s "
          f"({codec.config.bitrate(codes.n_codebooks) / 1000:.2f} kbps)")
    audio44 = codec.decode(codes)                              # float32 at 44.1 kHz, exactly codes.length samples
    audio48 = codec.decode(codes, sample_rate=codes.input_rate)  # back at 48 kHz, the input's length
    print(f"decoded {audio44.size} samples at {codec.sample_rate} Hz, {audio48.size} at {codes.input_rate} Hz")

    # Live: feed pieces of any size as they arrive; codes and audio come out as soon as they are ready.
    mono44, _ = to_codec_input(stereo, 48000, codec.sample_rate)   # what encode() heard: mono, 44.1 kHz
    pieces = []
    with codec.stream(step_frames=4) as stream:
        for start in range(0, mono44.size, 1000):            # 1000-sample chunks, like a microphone callback
            pieces.append(stream.decode(stream.encode(mono44[start: start + 1000])))
        pieces.append(stream.flush().audio)                    # drain both lookaheads
    streamed = np.concatenate(pieces)
    print(f"streamed {streamed.size} samples; max |stream - one-shot| = {np.max(np.abs(streamed - audio44)):.2e}; "
          f"algorithmic latency {codec.algorithmic_latency(4) * 1000:.0f} ms")

    # Files: .apc holds the codes (11-bit, CRC32), any libsndfile format in and out.
    with tempfile.TemporaryDirectory() as tmp:
        codes.save(Path(tmp) / "clip.apc", codec.rvq.codebook_size, codec.hop)
        again = apucodec.Codes.load(Path(tmp) / "clip.apc")
        assert np.array_equal(again.array, codes.array)
        print(f"saved and reloaded {Path(tmp, 'clip.apc').stat().st_size} bytes of codes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
