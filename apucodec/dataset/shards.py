"""The output folder: Parquet shards of codes, the failures table, dataset.json.

    OUT/
      shards/00000.parquet ...   one row per encoded item (columns: SCHEMA_FIELDS)
      failures.parquet           path, sha256, stage, reason: one row per file that could not be encoded
      dataset.json               model summary, counts, totals, failures (rewritten at the end of every run)

A shard is written to a hidden temp file in shards/ and renamed into place only once it is complete, so readers
(and a resumed job) see whole shards or nothing; a killed job leaves at most a hidden temp file, removed by the next
run. The set of content hashes in the visible shards *is* the job's progress: a rerun skips those items, and since
a row becomes visible exactly when its shard does, a killed-and-resumed job neither loses nor duplicates an item.

Codes are stored as `binary`: uint16 little-endian, codebook-major ([codebooks, frames] in C order), which is
2 bytes per code whatever the codebook size (<= 65536) and one `np.frombuffer` away from an array.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.dataset.deps import pyarrow, pyarrow_parquet
from apucodec.errors import ApucodecError, first_line

SHARDS_DIR = "shards"
FAILURES_NAME = "failures.parquet"
DATASET_JSON = "dataset.json"
FORMAT_NAME = "apucodec-tokens"
FORMAT_VERSION = 2  # 2: rows record the encoder graph's precision and sha256
CODES_DTYPE = np.dtype("<u2")
# (column, pyarrow type name): the row layout of every shard
SCHEMA_FIELDS = (("path", "string"), ("sha256", "string"), ("duration", "float64"), ("sample_rate", "int32"),
                 ("samples", "int64"), ("frames", "int32"), ("codebooks", "int16"), ("codes", "binary"),
                 ("model_id", "string"), ("precision", "string"), ("graph_sha256", "string"))
FAILURE_FIELDS = (("path", "string"), ("sha256", "string"), ("stage", "string"), ("reason", "string"))


def _schema(fields: tuple[tuple[str, str], ...]) -> Any:
    pa = pyarrow()
    return pa.schema([(name, getattr(pa, kind)()) for name, kind in fields])


def codes_to_bytes(codes: np.ndarray) -> bytes:
    return np.ascontiguousarray(codes, dtype=CODES_DTYPE).tobytes()


def codes_from_bytes(data: bytes, codebooks: int, frames: int) -> np.ndarray:
    """A shard's `codes` cell -> int64 array [codebooks, frames]."""
    return np.frombuffer(data, dtype=CODES_DTYPE).reshape(codebooks, frames).astype(np.int64)


def shard_paths(out: Path) -> list[Path]:
    folder = out / SHARDS_DIR
    return sorted(folder.glob("[0-9]*.parquet")) if folder.is_dir() else []


def remove_partial_shards(out: Path) -> int:
    """Temp files a killed run left behind (never visible to readers); returns how many were removed."""
    folder = out / SHARDS_DIR
    stale = list(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def read_columns(out: Path, columns: list[str]) -> Iterator[dict[str, list[Any]]]:
    """The given columns of every visible shard, shard by shard (a shard that cannot be read is an error)."""
    pq = pyarrow_parquet()
    for path in shard_paths(out):
        try:
            table = pq.read_table(path, columns=columns)
        except Exception as exc:
            raise ApucodecError(f"{path}: unreadable shard ({first_line(exc)}); move it away and rerun "
                                "to encode its items again") from None
        yield table.to_pydict()


def completed(out: Path, model_id: str, codebooks: int, precision: str = "fp32",
              graph_sha256: str = "") -> dict[str, str]:
    """Content sha256 -> path of every item already encoded in OUT; refuses an OUT made by another model,
    codebook count or encoder graph (mixing them would make one dataset hold codes of different vocabularies, or
    of one vocabulary tokenized differently: an NPU's INT8, a CPU's INT8 and FP32 codes disagree)."""
    done: dict[str, str] = {}
    for path in shard_paths(out):
        names = set(pyarrow_parquet().read_schema(path).names)
        if "precision" not in names:
            raise ApucodecError(f"{path}: a shard that does not record its encoder graph's precision (made by an "
                                "older apucodec); this run cannot tell whether its codes match: choose another "
                                "output folder")
    for shard in read_columns(out, ["path", "sha256", "model_id", "codebooks", "precision", "graph_sha256"]):
        made = zip(shard["model_id"], shard["codebooks"], shard["precision"], shard["graph_sha256"], strict=True)
        for other, n, graph, sha in {(m, int(c), p, g) for m, c, p, g in made}:
            if other != model_id or n != codebooks:
                raise ApucodecError(f"{out}: holds codes of model {other} with {n} codebooks; this run would add "
                                    f"model {model_id} with {codebooks}: choose another output folder")
            if graph != precision or (graph_sha256 and sha != graph_sha256):
                raise ApucodecError(f"{out}: holds codes made by the {graph} encoder graph ({sha[:12]}); this run "
                                    f"would add codes of the {precision} graph ({graph_sha256[:12]}): use the same "
                                    "--precision, or another output folder")
        done.update(zip(shard["sha256"], shard["path"], strict=True))
    return done


class ShardWriter:
    """Buffers encoded rows and writes each full buffer as the next numbered shard, atomically."""

    def __init__(self, out: Path, shard_size: int) -> None:
        self.folder = out / SHARDS_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        existing = [int(p.stem) for p in shard_paths(out)]
        self.next_index = max(existing) + 1 if existing else 0
        self.rows: list[dict[str, Any]] = []
        self.written_rows = 0
        self.written_shards = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        path = self.folder / f"{self.next_index:05d}.parquet"
        write_table_atomic(path, self.rows, SCHEMA_FIELDS)
        self.next_index += 1
        self.written_rows += len(self.rows)
        self.written_shards += 1
        self.rows = []


def write_table_atomic(path: Path, rows: Iterable[dict[str, Any]], fields: tuple[tuple[str, str], ...]) -> None:
    """Rows -> Parquet at `path`, through a hidden temp file in the same folder, fsynced, then renamed."""
    pa, pq = pyarrow(), pyarrow_parquet()
    rows = list(rows)
    table = pa.Table.from_pydict({name: [row[name] for row in rows] for name, _ in fields}, schema=_schema(fields))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failures(out: Path, failures: list[dict[str, Any]]) -> None:
    write_table_atomic(out / FAILURES_NAME, sorted(failures, key=lambda f: f["path"]), FAILURE_FIELDS)


def summarize(out: Path, model_summary: dict[str, Any], codebooks: int, failures: list[dict[str, Any]],
              duplicates: list[dict[str, str]], run: dict[str, Any]) -> dict[str, Any]:
    """dataset.json's content, with counts and totals recomputed from the shards themselves (not from this run's
    bookkeeping, which a killed earlier run never finished)."""
    items = frames = samples = 0
    seconds = 0.0
    for shard in read_columns(out, ["duration", "frames", "samples"]):
        items += len(shard["duration"])
        seconds += float(sum(shard["duration"]))
        frames += int(sum(shard["frames"]))
        samples += int(sum(shard["samples"]))
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "model": model_summary, "codebooks": codebooks,
            "codes": {"column": "codes", "dtype": "uint16 little-endian", "layout": "[codebooks, frames] row-major"},
            "counts": {"items": items, "shards": len(shard_paths(out)), "failures": len(failures),
                       "duplicate_content": len(duplicates)},
            "totals": {"audio_seconds": round(seconds, 3), "audio_hours": round(seconds / 3600, 6),
                       "frames": frames, "codes": frames * codebooks, "samples_at_codec_rate": samples},
            "failures": {"table": FAILURES_NAME, "by_reason": _by_reason(failures)},
            "duplicates": duplicates[:1000], "last_run": run}


def _by_reason(failures: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for failure in failures:
        key = failure["reason"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def write_dataset_json(out: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{DATASET_JSON}.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out / DATASET_JSON)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
