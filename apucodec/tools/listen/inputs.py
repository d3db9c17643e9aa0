"""The inputs of a listening page: which files they are, and each one prepared on first use (encoded at the
model's N codebooks, decoded at 1..N, scored, pictured).

An audio input is encoded here and its .apc bytes are what the browser decodes; an .apc input is decoded as it is
(no original: no scores, no difference picture). Preparation is lazy and cached per input, under a lock, so a
folder of many files opens at once and each input costs its decodes only when its section is first asked for.
The decodes the page plays come from the runtime's CPU FP32 decoder graph: the same graph the browser runs, so
the page can show the browser's decode against them sample by sample.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.dsp.metrics import mel_distance, si_sdr
from apucodec.errors import ApucodecError
from apucodec.tools.listen import images

APC_SUFFIX = ".apc"


@dataclass(frozen=True)
class Source:
    """One listed input: a file the user named (or found in a folder they named)."""

    path: Path
    name: str

    @property
    def is_apc(self) -> bool:
        return self.path.suffix.lower() == APC_SUFFIX


def list_sources(paths: list[Path]) -> list[Source]:
    """Files as named, folders expanded (audio files libsndfile opens, and .apc files), in a stable order.

    A file named on the command line is served even through a symlink (the user chose it); a folder contributes
    only files that really lie inside it.
    """
    from apucodec.io.audio_read import list_audio_files

    if not paths:
        raise ApucodecError("listen: name at least one audio file, .apc file or folder")
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            # A link inside the folder that leads out of it is not the folder's: only what resolves inside counts.
            root = path.resolve()
            inside = [p for p in sorted(set(list_audio_files(path)) | set(path.rglob(f"*{APC_SUFFIX}")))
                      if p.is_file() and p.resolve().is_relative_to(root)]
            if not inside:
                raise ApucodecError(f"{path}: no audio or .apc files in this folder")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise ApucodecError(f"{path}: no such file or folder")
    sources, seen = [], set()
    for path in found:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            sources.append(Source(real, path.name))
    return sources


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV (what every browser's <audio> plays), clipped to [-1, 1]."""
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@dataclass
class Prepared:
    """Everything the page shows for one input (audio as float32 at the codec's rate)."""

    name: str
    sample_rate: int
    apc: bytes
    n_codebooks: int
    frames: int
    original: np.ndarray | None
    decoded: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, dict[str, float | None]] = field(default_factory=dict)

    @functools.cached_property
    def top_db(self) -> float:
        return images.peak_db(self.original if self.original is not None else self.decoded[self.n_codebooks])

    def summary(self, codebook_bits: int, hop: int) -> dict[str, Any]:
        frame_rate = self.sample_rate / hop
        return {
            "name": self.name, "sample_rate": self.sample_rate, "seconds": len(self.decoded[self.n_codebooks])
            / self.sample_rate, "n_codebooks": self.n_codebooks, "frames": self.frames,
            "has_original": self.original is not None,
            "levels": [{"n": n, "kbps": n * codebook_bits * frame_rate / 1000.0, **self.scores.get(n, {})}
                       for n in sorted(self.decoded)],
        }


class Inputs:
    """The page's inputs, each prepared once on first use (thread-safe: the server answers on many threads)."""

    def __init__(self, sources: list[Source], codec: Any) -> None:
        self.sources, self.codec = sources, codec
        self._prepared: dict[int, Prepared] = {}
        self._locks = [threading.Lock() for _ in sources]

    def __len__(self) -> int:
        return len(self.sources)

    def get(self, index: int) -> Prepared:
        with self._locks[index]:
            if index not in self._prepared:
                self._prepared[index] = prepare(self.sources[index], self.codec)
            return self._prepared[index]


def prepare(source: Source, codec: Any) -> Prepared:
    """Encode (audio inputs), decode at every codebook count, and score against the original."""
    from apucodec.codes import Codes
    from apucodec.io.apc_reader import parse_apc
    from apucodec.io.apc_writer import write_apc
    from apucodec.io.audio_read import read_audio

    rate = codec.sample_rate
    if source.is_apc:
        data = source.path.read_bytes()
        header, array = parse_apc(data, str(source.path))
        codes = Codes(array, header.original_length, header.sample_rate, header.input_rate, header.input_length,
                      header.model_id)
        original = None
    else:
        original, info = read_audio(source.path, rate)
        if not original.size:
            raise ApucodecError(f"{source.path}: has no samples")
        codes = codec.encode(original, rate)
        out = io.BytesIO()
        write_apc(out, codes.array, original_length=codes.length, sample_rate=codes.sample_rate,
                  input_rate=codes.input_rate, input_length=codes.input_length,
                  codebook_size=codec.codebook_size, hop=codec.hop, model_id=codes.model_id)
        data = out.getvalue()
    prepared = Prepared(source.name, rate, data, codes.n_codebooks, codes.frames, original)
    for n in range(1, codes.n_codebooks + 1):
        part = Codes(codes.array[:n], codes.length, codes.sample_rate, codes.input_rate, codes.input_length,
                     codes.model_id)
        prepared.decoded[n] = codec.decode(part)
        if original is not None:
            prepared.scores[n] = scores(original, prepared.decoded[n], rate)
    return prepared


def scores(original: np.ndarray, decoded: np.ndarray, rate: int) -> dict[str, float | None]:
    """SI-SDR (dB, higher is better), multi-scale log-mel distance (lower is better), ViSQOL MOS-LQO if installed."""
    values = {"si_sdr": si_sdr(original, decoded), "mel_distance": mel_distance(original, decoded, rate),
              "visqol": visqol_mos(original, decoded, rate)}
    return {k: v if v is not None and np.isfinite(v) else None for k, v in values.items()}  # JSON has no inf/nan


def visqol_mos(original: np.ndarray, decoded: np.ndarray, rate: int) -> float | None:
    """ViSQOL v3 audio-mode MOS-LQO (at 48 kHz) when a `visqol` package is installed, else None.

    Two packages install the module `visqol`: Google's C++ binding (visqol_lib_py) and the pure-Python port
    visqol-python (visqol.api); either is used, whichever is there.
    """
    try:
        import visqol  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None
    from apucodec.io.resample import resample

    ref, deg = (resample(np.asarray(x, np.float32), rate, 48000).astype(np.float64) for x in (original, decoded))
    try:
        from visqol.api import VisqolApi  # type: ignore[import-not-found]  # visqol-python
    except ImportError:
        return _google_visqol(ref, deg)
    api = VisqolApi()
    api.create(mode="audio")
    return float(api.measure_from_arrays(ref, deg, 48000).moslqo)


def _google_visqol(ref: np.ndarray, deg: np.ndarray) -> float | None:
    import os

    try:
        from visqol import visqol_lib_py  # type: ignore[import-not-found]
        from visqol.pb2 import visqol_config_pb2  # type: ignore[import-not-found]
    except ImportError:
        return None
    config = visqol_config_pb2.VisqolConfig()
    config.audio.sample_rate = 48000
    config.options.use_speech_scoring = False
    config.options.svr_model_path = os.path.join(os.path.dirname(visqol_lib_py.__file__), "model",
                                                 "libsvm_nu_svr_model.txt")
    api = visqol_lib_py.VisqolApi()
    api.Create(config)
    return float(api.Measure(ref, deg).moslqo)
