"""Training data: random, augmented segments from a folder of audio, plus fixed held-out segments for validation.

The whole folder is decoded once into memory (30 minutes of 44.1 kHz float32 is ~320 MB), because random access
into compressed files per step would make data loading, not the model, the bottleneck on a 2-core laptop.
Training items are addressed by (epoch, index) and generated deterministically from the seed (see
`SegmentSource.item`), which is what lets ranks shard an epoch and a resumed run draw the very same batches.
The last `val_fraction` of every file is held out, so validation measures audio the model never trained on while
still covering every kind of material in the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apucodec.errors import ApucodecError
from apucodec.io.audio_read import list_audio_files, read_audio

SILENCE_RMS = 10 ** (-60 / 20)


@dataclass
class Clip:
    path: Path
    audio: np.ndarray
    train_end: int  # samples [0, train_end) train; [train_end, len) validate


class SegmentSource:
    def __init__(self, folder: str | Path, segment_samples: int, *, val_fraction: float = 0.1,
                 sample_rate: int, log=print) -> None:
        files = list_audio_files(folder)
        if not files:
            raise ApucodecError(f"{folder}: no decodable audio files found")
        self.segment = segment_samples
        self.sample_rate = sample_rate
        self.clips: list[Clip] = []
        for path in files:
            audio, _ = read_audio(path, sample_rate)
            train_end = int(len(audio) * (1 - val_fraction))
            if train_end < segment_samples:
                log(f"skipping {path}: {len(audio) / sample_rate:.2f} s is shorter than a training segment")
                continue
            self.clips.append(Clip(path, audio, train_end))
        if not self.clips:
            raise ApucodecError(
                f"{folder}: every audio file is shorter than one training segment "
                f"({segment_samples / sample_rate:.2f} s plus the held-out tail); use a shorter --segment-seconds"
            )
        # (clip, first sample) of every whole segment in the training parts: one epoch visits each once, so every
        # second of audio is equally likely, whatever the file lengths.
        self._slots = [(i, k * segment_samples) for i, clip in enumerate(self.clips)
                       for k in range(clip.train_end // segment_samples)]

    @property
    def seconds(self) -> float:
        return sum(len(c.audio) for c in self.clips) / self.sample_rate

    @property
    def slots(self) -> int:
        """Segments in one epoch: every training second once (each clip's train part cut into whole segments)."""
        return len(self._slots)

    def item(self, seed: int, epoch: int, index: int) -> np.ndarray:
        """Segment `index` of `epoch` [1, segment] float32, augmented with random time shift, gain and polarity.

        Everything random comes from a generator seeded by (seed, epoch, index), so an item is the same whichever
        rank, DataLoader worker or resumed process draws it: exact resume needs only the step counter. A near-silent
        draw is retried at a random offset in the same clip.
        """
        rng = np.random.default_rng((seed, epoch, index))
        clip_index, base = self._slots[index % len(self._slots)]
        clip = self.clips[clip_index]
        last_start = clip.train_end - self.segment
        start = min(base + int(rng.integers(0, self.segment)), last_start)
        seg = clip.audio[start:start + self.segment]
        for _attempt in range(7):
            if np.sqrt(np.mean(seg**2)) > SILENCE_RMS:
                break
            start = int(rng.integers(0, last_start + 1))
            seg = clip.audio[start:start + self.segment]
        gain = 10 ** (rng.uniform(-12.0, 3.0) / 20)
        peak = float(np.max(np.abs(seg))) or 1.0
        gain = min(gain, 0.99 / peak)
        sign = -1.0 if rng.random() < 0.5 else 1.0
        return (seg * (gain * sign)).astype(np.float32)[None, :]

    def validation_segments(self, max_segments: int = 32) -> np.ndarray:
        """Fixed held-out segments (the same every call), [N, 1, segment]."""
        segs = []
        for clip in self.clips:
            tail = clip.audio[clip.train_end:]
            for start in range(0, len(tail) - self.segment + 1, self.segment):
                seg = tail[start:start + self.segment]
                if np.sqrt(np.mean(seg**2)) > SILENCE_RMS:
                    segs.append(seg)
        if not segs:  # tails shorter than a segment: fall back to the end of each clip
            segs = [c.audio[-self.segment:] for c in self.clips]
        step = max(1, len(segs) // max_segments)
        return np.stack(segs[::step][:max_segments])[:, None, :].astype(np.float32)
