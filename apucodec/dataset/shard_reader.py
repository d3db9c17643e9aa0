"""Reading a tokenized dataset back: codes per item as arrays, a row decoded back to audio.

    from apucodec.dataset import TokenDataset
    ds = TokenDataset("corpus-codes")
    for item in ds:                      # TokenItem: path, sha256, duration, codes [codebooks, frames] ...
        train_on(item.codes)
    audio = ds.decode(item)              # float32 mono at the codec rate, item.samples long

The shards are plain Parquet, so pyarrow, pandas, polars or Hugging Face `datasets` read them directly; see
docs/tokenize.md. This module only adds the codes' layout (uint16 little-endian, [codebooks, frames]) and decoding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.dataset import shards
from apucodec.dataset.deps import pyarrow_parquet
from apucodec.errors import ApucodecError


@dataclass(frozen=True)
class TokenItem:
    path: str
    sha256: str
    duration: float      # seconds of the source file
    sample_rate: int     # of the source file
    samples: int         # length at the codec rate (what decoding returns)
    codes: np.ndarray    # int64 [codebooks, frames]
    model_id: str


class TokenDataset:
    """An `apucodec tokenize` output folder (only complete shards are ever visible)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        if not self.out.is_dir():
            raise ApucodecError(f"{self.out}: no such folder")
        self.shards = shards.shard_paths(self.out)
        meta = self.out / shards.DATASET_JSON
        self.info: dict[str, Any] = json.loads(meta.read_text()) if meta.is_file() else {}
        self._decoder: Any = None
        self._decoder_model: str | None = None

    def table(self, columns: list[str] | None = None) -> Any:
        """All shards as one pyarrow Table (e.g. `ds.table(["path", "duration"]).to_pandas()`)."""
        pa, pq = shards.pyarrow(), pyarrow_parquet()
        tables = [pq.read_table(path, columns=columns) for path in self.shards]
        return pa.concat_tables(tables) if tables else pa.table({})

    def __len__(self) -> int:
        pq = pyarrow_parquet()
        return sum(pq.ParquetFile(path).metadata.num_rows for path in self.shards)

    def __iter__(self) -> Iterator[TokenItem]:
        pq = pyarrow_parquet()
        for path in self.shards:
            for row in pq.read_table(path).to_pylist():
                yield item_from_row(row)

    def decode(self, item: TokenItem, model: str | Path | None = None) -> np.ndarray:
        """An item's codes back to float32 mono audio at the codec rate (`item.samples` long).

        `model` defaults to the model that made the dataset (its path as recorded in dataset.json); a model with
        another id is refused, since its codebooks would turn the same codes into different audio.
        """
        from apucodec.dataset.encoder import CodecAdapter

        path = model or (self.info.get("model") or {}).get("path")
        if path is None:
            raise ApucodecError(f"{self.out}: dataset.json names no model; pass model=")
        if self._decoder is None or self._decoder_model != str(path):
            self._decoder = CodecAdapter(path, stages=("decoder",))
            self._decoder_model = str(path)
        if self._decoder.model_id != item.model_id:
            raise ApucodecError(f"{item.path}: encoded by model {item.model_id}, not by {self._decoder.model_id} "
                                f"({path})")
        return self._decoder.decode(item.codes, item.samples)


def item_from_row(row: dict[str, Any]) -> TokenItem:
    """One shard row (a dict, as pyarrow's to_pylist or `datasets` give it) -> TokenItem with decoded codes."""
    codes = shards.codes_from_bytes(row["codes"], int(row["codebooks"]), int(row["frames"]))
    return TokenItem(path=row["path"], sha256=row["sha256"], duration=float(row["duration"]),
                     sample_rate=int(row["sample_rate"]), samples=int(row["samples"]), codes=codes,
                     model_id=row["model_id"])
