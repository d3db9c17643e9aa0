"""The code that runs inside Ray: probe tasks, read tasks, encoder actors.

Each function takes and returns a numpy batch (dict of column -> array) and never raises for a bad file: the
problem goes into the row's `error` column as one line and the driver files it in the failures table. Only a bug
(or a model that cannot be opened, which fails in the actor's constructor) stops the job.

Audio travels from the read tasks to the actors as float32 bytes at the codec rate: one flat binary column keeps
Ray's blocks simple whatever the clip lengths.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apucodec.dataset.corpus import probe_item, strip_path
from apucodec.errors import ApucodecError, first_line

Batch = dict[str, Any]


def probe_batch(batch: Batch) -> Batch:
    """path -> sha256, duration, sample_rate, error (header and hash only; the samples are not decoded here)."""
    results = [probe_item(str(path)) for path in batch["path"]]
    out = dict(batch)
    for key in ("sha256", "duration", "sample_rate", "error"):
        out[key] = np.array([r[key] for r in results])
    return out


def read_batch(batch: Batch, sample_rate: int) -> Batch:
    """Decode, downmix and resample each file to the codec rate on a CPU task (NaN/Inf and decode errors -> error)."""
    from apucodec.io.audio_read import read_audio

    audio: list[bytes] = []
    errors: list[str] = []
    for path, error in zip(batch["path"], batch["error"], strict=True):
        samples, message = b"", str(error)
        if not message:
            try:
                data, _ = read_audio(str(path), sample_rate)
                samples = data.astype(np.float32, copy=False).tobytes()
            except Exception as exc:  # noqa: BLE001 - any one file's problem becomes its failure row
                message = _one_line(exc, str(path))
        audio.append(samples)
        errors.append(message)
    out = dict(batch)
    out["audio"] = np.array(audio, dtype=object)
    out["error"] = np.array(errors, dtype=object)
    out["stage"] = np.array(["read" if e else "" for e in errors], dtype=object)
    return out


def _one_line(exc: Exception, path: str) -> str:
    """An ApucodecError's own line (path prefix removed), else the exception's type and first line."""
    if isinstance(exc, ApucodecError):
        return strip_path(str(exc), path)
    return first_line(exc, with_type=True)


class EncodeActor:
    """Holds one runtime codec for its whole life (sessions are opened once, not per file)."""

    def __init__(self, model_path: str, n_codebooks: int, threads: int, precision: str = "fp32",
                 graph_sha256: str = "") -> None:
        from apucodec.dataset.encoder import CodecAdapter

        self.codec = CodecAdapter(model_path, threads=threads, stages=("encoder",), precision=precision)
        if graph_sha256 and self.codec.graph[1] != graph_sha256:
            # an actor on another machine (another EP) would make other codes than the driver planned for
            raise ApucodecError(f"{model_path}: precision {precision!r} runs the {self.codec.graph[0]} encoder graph "
                                f"on this worker, not the one the run started with ({graph_sha256[:12]}); use "
                                "--precision fp32 for codes that are the same on every machine")
        self.n_codebooks = n_codebooks

    def __call__(self, batch: Batch) -> Batch:
        from apucodec.dataset.shards import codes_to_bytes

        codes: list[bytes] = []
        frames: list[int] = []
        samples: list[int] = []
        errors: list[str] = []
        stages: list[str] = []
        for path, audio, error, stage in zip(batch["path"], batch["audio"], batch["error"], batch["stage"],
                                             strict=True):
            blob, n_frames, n_samples, message = b"", 0, 0, str(error)
            if not message:
                try:
                    pcm = np.frombuffer(audio, dtype=np.float32)
                    result = self.codec.encode(pcm, self.n_codebooks)
                    blob, n_frames, n_samples = codes_to_bytes(result), int(result.shape[1]), int(pcm.size)
                except Exception as exc:  # noqa: BLE001 - any one file's problem becomes its failure row
                    message, stage = _one_line(exc, str(path)), "encode"
            codes.append(blob)
            frames.append(n_frames)
            samples.append(n_samples)
            errors.append(message)
            stages.append(str(stage))
        out = {key: value for key, value in batch.items() if key != "audio"}
        out.update(codes=np.array(codes, dtype=object), frames=np.array(frames, dtype=np.int64),
                   samples=np.array(samples, dtype=np.int64), error=np.array(errors, dtype=object),
                   stage=np.array(stages, dtype=object))
        return out
