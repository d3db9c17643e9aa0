"""`Codes`: what `Codec.encode` returns — the codes, everything needed to turn them back into audio of the right
length and channel count, and where they came from (model, encoder graph precision and sha256)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apucodec.errors import InputError


@dataclass(frozen=True)
class Codes:
    """RVQ codes of one signal (each channel coded on its own).

    array:        [n_codebooks, frames] integer codes for one channel; [channels, n_codebooks, frames] for more
                  (frames = ceil(length / hop), ~86 per second)
    length:       samples per channel of the encoded signal at the codec's rate (decode returns exactly this many)
    sample_rate:  the codec's rate (44100)
    input_rate:   the rate of the audio that was encoded (decode(codes, sample_rate=codes.input_rate) restores it)
    input_length: samples of that audio at `input_rate`
    model_id:     the model that made them (another model's codebooks would decode them into noise)
    codebook_size, hop: the model's, so `save(path)` needs nothing else (0: unknown, for Codes built by hand)
    precision:    the encoder graph's precision ("fp32", "cpu-int8", "npu-int8", "bf16"; "" when unknown)
    graph_sha256: the sha256 of the encoder graph that made them ("" when unknown, e.g. a version 1 .apc)
    """

    array: np.ndarray
    length: int
    sample_rate: int
    input_rate: int
    input_length: int
    model_id: str
    codebook_size: int = 0
    hop: int = 0
    precision: str = ""
    graph_sha256: str = ""

    @property
    def channels(self) -> int:
        return 1 if self.array.ndim == 2 else int(self.array.shape[0])

    @property
    def per_channel(self) -> np.ndarray:
        """[channels, n_codebooks, frames], whatever the channel count."""
        return self.array[None] if self.array.ndim == 2 else self.array

    @property
    def n_codebooks(self) -> int:
        return int(self.array.shape[-2])

    @property
    def frames(self) -> int:
        return int(self.array.shape[-1])

    @property
    def seconds(self) -> float:
        return self.length / self.sample_rate

    def save(self, path: str | Path) -> None:
        """Write an .apc file (the same format `apucodec encode` writes; committed only when complete)."""
        from apucodec.io.apc_writer import write_apc
        from apucodec.io.outputs import open_binary_output

        if not self.codebook_size or not self.hop:
            raise InputError("these Codes do not say their codebook size and hop (made by hand?): build them with "
                             "codebook_size= and hop=, or get them from Codec.encode")
        with open_binary_output(path) as fh:  # the path as given: "o.apc/" must stay refused
            write_apc(fh, self.array, original_length=self.length, sample_rate=self.sample_rate,
                      input_rate=self.input_rate, input_length=self.input_length, codebook_size=self.codebook_size,
                      hop=self.hop, model_id=self.model_id, precision=self.precision,
                      graph_sha256=self.graph_sha256)

    @classmethod
    def load(cls, path: str | Path) -> Codes:
        """Read an .apc file (version 1 or 2), every field checked (InputError on a bad file)."""
        from apucodec.io.apc_reader import read_apc

        header, codes = read_apc(Path(path))
        return cls(codes, header.original_length, header.sample_rate, header.input_rate, header.input_length,
                   header.model_id, header.codebook_size, header.hop, header.precision, header.graph_sha256)

    def check_for(self, model_id: str, n_codebooks: int, hop: int) -> None:
        """Refuse codes this model cannot decode (InputError): wrong shape, frames, or another model's codes."""
        if self.array.ndim not in (2, 3) or not 1 <= self.n_codebooks <= n_codebooks:
            raise InputError(f"codes of shape {list(self.array.shape)}: expected [1..{n_codebooks}, frames] or "
                             f"[channels, 1..{n_codebooks}, frames]")
        if self.hop and self.hop != hop:
            raise InputError(f"codes made at hop {self.hop}, this model's hop is {hop}")
        if self.frames != -(-self.length // hop):
            raise InputError(f"codes of {self.frames} frames do not cover {self.length} samples")
        if self.model_id != model_id:
            raise InputError(f"codes were made by model {self.model_id}, not by this codec's {model_id}")
