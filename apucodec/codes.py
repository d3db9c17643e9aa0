"""`Codes`: what `Codec.encode` returns, and everything needed to turn it back into audio of the right length."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apucodec.errors import ApucodecError


@dataclass(frozen=True)
class Codes:
    """RVQ codes of one signal.

    array:        [n_codebooks, frames] integer codes (frames = ceil(length / hop), ~86 per second)
    length:       samples of the encoded signal at the codec's rate (decode returns exactly this many)
    sample_rate:  the codec's rate (44100)
    input_rate:   the rate of the audio that was encoded (decode(codes, sample_rate=codes.input_rate) restores it)
    input_length: samples of that audio at `input_rate`
    model_id:     the model that made them (another model's codebooks would decode them into noise)
    """

    array: np.ndarray
    length: int
    sample_rate: int
    input_rate: int
    input_length: int
    model_id: str

    @property
    def n_codebooks(self) -> int:
        return int(self.array.shape[0])

    @property
    def frames(self) -> int:
        return int(self.array.shape[1])

    @property
    def seconds(self) -> float:
        return self.length / self.sample_rate

    def save(self, path: str | Path, codebook_size: int, hop: int) -> None:
        """Write an .apc file (the same format `apucodec encode` writes), through the one output path: `-` is
        standard output, a device or FIFO is written in place, an existing file keeps its mode."""
        from apucodec.outputs import open_binary_output
        from apucodec.runtime.bitstream import write_apc

        with open_binary_output(path) as fh:
            write_apc(fh, self.array, original_length=self.length, sample_rate=self.sample_rate,
                      input_rate=self.input_rate, input_length=self.input_length, codebook_size=codebook_size,
                      hop=hop, model_id=self.model_id)

    @classmethod
    def load(cls, path: str | Path) -> Codes:
        from apucodec.runtime.bitstream import read_apc

        header, codes = read_apc(Path(path))
        return cls(codes, header.original_length, header.sample_rate, header.input_rate, header.input_length,
                   header.model_id)

    def check_for(self, model_id: str, n_codebooks: int, hop: int) -> None:
        if self.array.ndim != 2 or self.array.shape[0] < 1 or self.array.shape[0] > n_codebooks:
            raise ApucodecError(f"codes of shape {list(self.array.shape)}: expected [1..{n_codebooks}, frames]")
        if self.frames != -(-self.length // hop):
            raise ApucodecError(f"codes of {self.frames} frames do not cover {self.length} samples")
        if self.model_id != model_id:
            raise ApucodecError(f"codes were made by model {self.model_id}, not by this codec's {model_id}")
