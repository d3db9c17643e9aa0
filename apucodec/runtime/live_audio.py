"""Microphone -> ChannelStream -> speakers through PortAudio (the `sounddevice` package, extra `live`).

PortAudio calls back once per block of one step; the callback runs the stream (encode, RVQ, decode) and plays what
is ready, silence until the lookahead has filled. On a machine without audio devices (a server, CI) this ends with
one line saying so, before anything is opened.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from apucodec.errors import ApucodecError, first_line
from apucodec.runtime.channel_stream import ChannelStream


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError:
        raise ApucodecError("--live needs PortAudio's Python binding: install apucodec[live] (sounddevice)") from None
    except OSError as exc:  # the wheel is there but libportaudio is not
        raise ApucodecError(f"--live needs the PortAudio library ({first_line(exc)}); on Debian/Ubuntu: "
                            "apt-get install libportaudio2") from None
    return sounddevice


def pick_devices(input_device: str | None, output_device: str | None) -> tuple[Any, Any]:
    """(input, output) device ids PortAudio will open; one line naming what is missing otherwise."""
    sd = _sounddevice()
    try:
        devices = list(sd.query_devices())
    except Exception as exc:  # PortAudio errors have no common base class we can name
        raise ApucodecError(f"--live: PortAudio cannot list audio devices ({exc})") from None
    inputs = [i for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]
    outputs = [i for i, d in enumerate(devices) if d.get("max_output_channels", 0) > 0]
    if not inputs or not outputs:
        missing = " and ".join(kind for kind, found in (("input", inputs), ("output", outputs)) if not found)
        raise ApucodecError(f"--live: this machine has no audio {missing} device (PortAudio lists "
                            f"{len(devices)} device(s)); use --realtime to measure latency on a file instead")

    def resolve(name: str | None, candidates: list[int]) -> Any:
        if name is None:
            return None  # PortAudio's default device
        if name.isdigit() and int(name) in candidates:
            return int(name)
        matches = [i for i in candidates if name.lower() in devices[i]["name"].lower()]
        if not matches:
            raise ApucodecError(f"--live: no audio device matches {name!r}")
        return matches[0]

    return resolve(input_device, inputs), resolve(output_device, outputs)


def run_live(stream: ChannelStream, rate: int, step_samples: int, input_device: Any, output_device: Any,
             seconds: float | None) -> int:
    """Microphone to speakers until Ctrl-C (or `seconds`); returns the number of blocks that underran."""
    sd = _sounddevice()
    pending = np.zeros(0, dtype=np.float32)
    underruns = 0
    done = threading.Event()
    blocks = [0]
    limit = None if seconds is None else int(seconds * rate / step_samples)

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        nonlocal pending, underruns
        if status.output_underflow:
            underruns += 1
        pending = np.concatenate([pending, stream.process(indata[:, 0])])
        n = min(frames, pending.size)
        outdata[:n, 0] = pending[:n]
        outdata[n:, 0] = 0.0
        pending = pending[n:]
        blocks[0] += 1
        if limit is not None and blocks[0] >= limit:
            done.set()

    # Ctrl-C ends a live session normally.
    with sd.Stream(samplerate=rate, blocksize=step_samples, channels=1, dtype="float32",
                   device=(input_device, output_device), callback=callback), contextlib.suppress(KeyboardInterrupt):
        done.wait()
    return underruns
