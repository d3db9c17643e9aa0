"""Calibration clips: contiguous stretches of real audio, streamed through the step graph the way the runtime does.

Quantization ranges are only as good as the activations they are calibrated on, so the clips come from the
user's own recordings and skip near-silent stretches (which would pull every activation range towards zero). A
step graph's activations depend on its state (the caches of past input) and on where the step lies in the stream
(the bounds masks zero what lies outside the file), so calibration does not cut isolated slices: each clip is a
short stream of a few steps, run in order from zero state (apucodec/calibration/streams.py), giving a start step,
steady-state steps and a final flush step, as every file the runtime encodes does. Clips are drawn round-robin over
files in a seeded shuffle, so a folder with one long file and many short ones still contributes from every file,
and the same seed always picks the same clips; a file shorter than a clip but at least one step long is one clip
of its whole length. A share of the accepted clips is held out: the fidelity report streams audio the quantizer
never saw.

Only the selected clips are decoded (seek + read + resample a slice), so a large folder costs one header probe
per file, not a full decode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.errors import ApucodecError
from apucodec.io.audio_read import list_audio_files, probe, to_mono
from apucodec.io.resample import resample

# A clip whose RMS is below this is "near-silent" (-50 dBFS): it says nothing about activation ranges.
SILENCE_RMS = 10 ** (-50 / 20)
# Held-out clips for the fidelity report: at most this many, and never more than a fifth of what is available.
MAX_EVAL_CLIPS = 8
EVAL_SHARE = 5
# Extra codec-rate samples read on each side of a resampled clip, so soxr's filter has real context there.
RESAMPLE_MARGIN = 1024


@dataclass(frozen=True)
class ClipSource:
    """Where one clip came from (file, start and length in codec-rate samples), for the manifest and debugging."""

    path: Path
    start: int
    length: int
    rate: int  # the codec's rate: the model's, which the clips are cut at

    def describe(self) -> str:
        return f"{self.path.name}@{self.start / self.rate:.2f}s+{self.length / self.rate:.2f}s"


@dataclass
class CalibrationClips:
    """Clips (1-D codec-rate audio, each one stream) for calibration and, disjoint from them, for evaluation."""

    calibration: list[np.ndarray]
    evaluation: list[np.ndarray]
    calibration_sources: list[ClipSource]
    evaluation_sources: list[ClipSource]
    files_used: int
    rate: int  # the model's sample rate, which every clip is at
    files_skipped: dict[str, str] = field(default_factory=dict)   # name -> why
    silent_skipped: int = 0

    def keep_calibration(self, n: int) -> None:
        """Keep the first `n` calibration clips (those the calibration used); files_used follows."""
        self.calibration, self.calibration_sources = self.calibration[:n], self.calibration_sources[:n]
        self.files_used = len({s.path for s in self.calibration_sources + self.evaluation_sources})

    def summary(self) -> dict[str, object]:
        return {"calibration_clips": len(self.calibration), "evaluation_clips": len(self.evaluation),
                "calibration_seconds": round(sum(c.size for c in self.calibration) / self.rate, 2),
                "evaluation_seconds": round(sum(c.size for c in self.evaluation) / self.rate, 2),
                "files_used": self.files_used, "files_skipped": len(self.files_skipped),
                "near_silent_clips_skipped": self.silent_skipped}


@dataclass(frozen=True)
class _AudioFile:
    path: Path
    source_rate: int
    source_frames: int
    codec_rate: int

    @property
    def codec_frames(self) -> int:
        return int(self.source_frames * self.codec_rate // self.source_rate)


def _probe_files(folder: Path, codec_rate: int) -> tuple[list[_AudioFile], dict[str, str]]:
    paths = list_audio_files(folder)
    files, skipped = [], {}
    for path in paths:
        try:
            info = probe(path)
        except ApucodecError as exc:
            skipped[path.name] = str(exc)
            continue
        files.append(_AudioFile(path, info.sample_rate, info.frames, codec_rate))
    return files, skipped


def read_span(file: Path | _AudioFile, start: int, length: int, codec_rate: int) -> np.ndarray:
    """`length` samples of mono audio at `codec_rate` (the model's rate) starting at sample `start` of that rate
    (zero-padded at the end)."""
    if isinstance(file, Path):
        info = probe(file)
        file = _AudioFile(file, info.sample_rate, info.frames, codec_rate)
    rate = file.source_rate
    # Start reading on a sample where both rates' grids coincide (every rate/g source samples = codec_rate/g codec
    # samples), with some lead-in for the resampler's filter, so the slice lands on the same codec-rate samples a
    # whole-file resample would produce instead of a fraction of a sample off.
    g = math.gcd(rate, codec_rate)
    block_src, block_dst = rate // g, codec_rate // g
    lead_blocks = 0 if rate == codec_rate else math.ceil(RESAMPLE_MARGIN / block_dst)
    first_block = max(0, start // block_dst - lead_blocks)
    skip = start - first_block * block_dst
    tail = 0 if rate == codec_rate else RESAMPLE_MARGIN
    src_len = math.ceil((skip + length + tail) * rate / codec_rate)
    try:
        with sf.SoundFile(str(file.path)) as fh:
            fh.seek(first_block * block_src)
            data = fh.read(src_len, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile errors mid-file (truncated data, bad blocks)
        raise ApucodecError(f"{file.path}: cannot decode audio at {start / codec_rate:.2f}s ({exc})") from None
    mono = resample(to_mono(data), rate, codec_rate)[skip:skip + length]
    if not np.all(np.isfinite(mono)):
        raise ApucodecError(f"{file.path}: contains NaN or infinite samples")
    out = np.zeros(length, dtype=np.float32)
    out[: mono.size] = mono
    return out


def _round_robin(files: list[_AudioFile], clip: int, rng: np.random.Generator) -> Iterator[tuple[int, int, int]]:
    """(file index, start, length): files in shuffled order, each file's clip slots shuffled, one file at a time.

    A file holds `frames // clip` slots of a whole clip; one shorter than a clip is a single clip of its length.
    """
    per_file = []
    for index in rng.permutation(len(files)):
        count = files[index].codec_frames // clip
        slots = [(int(k) * clip, clip) for k in rng.permutation(count)] if count else [(0, files[index].codec_frames)]
        per_file.append((int(index), slots))
    while per_file:
        still = []
        for index, slots in per_file:
            start, length = slots.pop()
            yield index, start, length
            if slots:
                still.append((index, slots))
        per_file = still


def collect_clips(folder: str | Path, clip_samples: int, min_samples: int, count: int, seed: int = 0,
                  max_eval: int = MAX_EVAL_CLIPS, *, rate: int) -> CalibrationClips:
    """Pick `count` calibration clips of up to `clip_samples` (+ held-out evaluation clips) from every audio file
    under `folder`, at `rate` (the model's sample rate); files shorter than `min_samples` (one step of the graph)
    are skipped."""
    folder = Path(folder)
    if count < 1:
        raise ApucodecError(f"calibration needs at least 1 clip, got {count}")
    files, skipped = _probe_files(folder, rate)
    if not files:
        what = "no files" if not any(p.is_file() for p in folder.rglob("*")) else "no audio that libsndfile can read"
        raise ApucodecError(f"{folder}: {what} (calibration needs recordings: wav, flac, ogg, ...)")
    step_seconds = min_samples / rate
    long_enough = [f for f in files if f.codec_frames >= min_samples]
    for f in files:
        if f.codec_frames < min_samples:
            skipped[f.path.name] = f"shorter than one encoder step ({step_seconds:.2f} s)"
    if not long_enough:
        raise ApucodecError(f"{folder}: no file holds one encoder step of audio ({step_seconds:.2f} s at "
                            f"{rate} Hz); add longer recordings")

    n_eval_target = max(1, min(max_eval, count // 4))
    wanted = count + n_eval_target
    rng = np.random.default_rng(seed)
    accepted: list[tuple[np.ndarray, ClipSource]] = []
    silent = 0
    bad_files: set[int] = set()
    for index, start, length in _round_robin(long_enough, clip_samples, rng):
        if index in bad_files:
            continue
        try:
            audio = read_span(long_enough[index], start, length, rate)
        except ApucodecError as exc:
            bad_files.add(index)
            skipped[long_enough[index].path.name] = str(exc)
            continue
        if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
            silent += 1
            continue
        accepted.append((audio, ClipSource(long_enough[index].path, start, length, rate)))
        if len(accepted) >= wanted:
            break
    if len(accepted) < 2:
        found = "only near-silent audio" if silent else "no usable audio"
        raise ApucodecError(f"{folder}: {found}; calibration needs at least 2 clips above -50 dBFS "
                            f"(one encoder step, {step_seconds:.2f} s, or more each): one to calibrate on and one "
                            "to check the result")
    # Every EVAL_SHARE-th accepted clip is held out (spread over files by the round-robin order), up to the
    # target; the rest calibrate.
    n_eval = min(n_eval_target, max(1, len(accepted) // EVAL_SHARE))
    eval_idx = set(range(EVAL_SHARE - 1, len(accepted), EVAL_SHARE)[:n_eval]) if len(accepted) >= EVAL_SHARE \
        else {len(accepted) - 1}
    calib = [(a, s) for i, (a, s) in enumerate(accepted) if i not in eval_idx][:count]
    evals = [(a, s) for i, (a, s) in enumerate(accepted) if i in eval_idx]
    used = {s.path for _, s in calib + evals}
    return CalibrationClips(
        calibration=[a for a, _ in calib], evaluation=[a for a, _ in evals],
        calibration_sources=[s for _, s in calib], evaluation_sources=[s for _, s in evals],
        files_used=len(used), rate=rate, files_skipped=skipped, silent_skipped=silent)
