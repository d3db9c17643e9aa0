"""Opus as the reference point of `apucodec eval`: the same clips through `opusenc`/`opusdec` (opus-tools).

A codec's numbers mean little alone; Opus at a similar bitrate says what a mature codec gets from the same clips.
Opus works at 48 kHz, so each clip is resampled 44.1 -> 48 kHz, encoded at the asked bitrate (Opus' default VBR,
`--bitrate` is its target), decoded (opusdec removes the encoder's pre-skip, so the output is sample-aligned) and
resampled back to 44.1 kHz. The bitrate reported is the Ogg file's real size over the clip's duration, container
included, so it is comparable with (slightly above) the codec's code-stream bitrate.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.errors import ApucodecError
from apucodec.io.resample import resample

OPUS_RATE = 48000


@dataclass(frozen=True)
class OpusResult:
    audio: np.ndarray   # decoded, at the input's rate and length
    kbps: float         # Ogg Opus file size over the clip's duration


def opus_tools() -> tuple[str, str] | None:
    """Paths of opusenc and opusdec, or None when either is missing (apt install opus-tools)."""
    enc, dec = shutil.which("opusenc"), shutil.which("opusdec")
    return (enc, dec) if enc and dec else None


def opus_roundtrip(audio: np.ndarray, sample_rate: int, kbps: float) -> OpusResult:
    tools = opus_tools()
    if tools is None:
        raise ApucodecError("--opus needs opusenc and opusdec on PATH (Debian/Ubuntu: apt install opus-tools)")
    enc, dec = tools
    x48 = resample(np.asarray(audio, dtype=np.float32), sample_rate, OPUS_RATE)
    with tempfile.TemporaryDirectory(prefix="apucodec-opus-") as tmp:
        wav, ogg, out = Path(tmp) / "in.wav", Path(tmp) / "in.opus", Path(tmp) / "out.wav"
        sf.write(str(wav), x48, OPUS_RATE, subtype="FLOAT")
        for cmd in ([enc, "--quiet", "--bitrate", f"{kbps:g}", str(wav), str(ogg)],
                    [dec, "--quiet", "--rate", str(OPUS_RATE), "--float", str(ogg), str(out)]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise ApucodecError(f"{Path(cmd[0]).name} failed ({tail})")
        decoded, _ = sf.read(str(out), dtype="float32", always_2d=True)
        size_bits = ogg.stat().st_size * 8
    back = resample(decoded.mean(axis=1), OPUS_RATE, sample_rate)[:len(audio)]
    back = np.pad(back, (0, len(audio) - len(back)))
    return OpusResult(back.astype(np.float32), size_bits / (len(audio) / sample_rate) / 1000)
