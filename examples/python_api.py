"""The apucodec Python API in a few lines: one-shot encode/decode of arrays at any rate, files, and a live stream.

    python examples/python_api.py [MODEL_DIR]      # default: $APUCODEC_MODEL, ./apucodec-model, the bundled model
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import apucodec


def main(model: str | None = None) -> None:
    # The default precision (FP32) holds for one-shot calls and streams alike: the stream below gives the
    # one-shot codes, and its audio to float rounding.
    with apucodec.load(model) as codec:
        # Any rate, any channel count, float or integer PCM: here 1.5 s of 48 kHz stereo int16, each channel coded.
        t = np.arange(int(1.5 * 48000)) / 48000
        tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
        stereo = (np.stack([tone, 0.5 * tone], axis=1) * 32767).astype(np.int16)
        codes = codec.encode(stereo, sample_rate=48000)
        print(f"{codes.channels} x {codes.n_codebooks} x {codes.frames} codes for {codes.seconds:.2f} s "
              f"({codes.channels * codec.config.bitrate(codes.n_codebooks) / 1000:.2f} kbps)")
        audio44 = codec.decode(codes)                                # [n, 2] float32 at 44.1 kHz
        audio48 = codec.decode(codes, sample_rate=codes.input_rate)  # back at 48 kHz, the input's length
        print(f"decoded {audio44.shape} at {codec.sample_rate} Hz, {audio48.shape} at {codes.input_rate} Hz")

        # Live: the same int16 stereo pieces at 48 kHz, of any size; codes and audio come out when ready.
        pieces = []
        with codec.stream(sample_rate=48000, channels=2) as stream:
            for start in range(0, stereo.shape[0], 1000):      # 1000-frame chunks, like a microphone callback
                pieces.append(stream.process(stereo[start: start + 1000]))
        pieces.append(stream.flush().audio)                    # drain both lookaheads (after the block works too)
        streamed = np.concatenate(pieces)
        print(f"streamed {streamed.shape}; max |stream - one-shot| = {np.max(np.abs(streamed - audio44)):.2e}; "
              f"algorithmic latency {codec.algorithmic_latency(4) * 1000:.0f} ms")

        # Files: .apc holds the codes (11-bit, CRC32) and where they came from; any libsndfile format in and out.
        with tempfile.TemporaryDirectory() as tmp:
            codes.save(Path(tmp) / "clip.apc")
            again = apucodec.Codes.load(Path(tmp) / "clip.apc")
            assert np.array_equal(again.array, codes.array)
            print(f"saved and reloaded {Path(tmp, 'clip.apc').stat().st_size} bytes of codes "
                  f"({again.precision} encoder graph {again.graph_sha256[:12]})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
