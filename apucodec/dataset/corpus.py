"""What to tokenize: a folder (recursively) or a manifest (CSV / JSONL / Parquet with a `path` column).

Listing happens in the driver and only deals with names; everything that opens a file (hashing, probing, decoding)
runs in Ray tasks, so a corpus on a cluster's shared storage is never read through the driver. An item's identity
is its content sha256 (computed by `probe_item`): renaming or moving a file does not make it new work, and two
copies of the same recording are encoded once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError, first_line

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".parquet")
PATH_COLUMN = "path"
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class CorpusItem:
    path: str       # absolute, as the workers open it
    relpath: str    # as written in the output: relative to the corpus folder (or as the manifest gives it)


def list_corpus(corpus: str | Path, exclude: Path | None = None) -> list[CorpusItem]:
    """Every candidate file of a folder or manifest, sorted by relative path (deterministic shard contents).

    Folders list every regular file: whether it is audio is decided by probing it in a task, and a file that is
    not becomes a row of the failures table instead of silently vanishing (hidden files, whose names start with a
    dot, are skipped, and so is `exclude`: the output folder, when it lies inside the corpus).
    """
    corpus = Path(corpus)
    if not corpus.exists():
        raise ApucodecError(f"{corpus}: no such folder or manifest")
    if corpus.is_dir():
        root = corpus.resolve()
        skip = exclude.resolve() if exclude is not None else None
        items = [CorpusItem(str(p), p.relative_to(root).as_posix()) for p in root.rglob("*")
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
                 and (skip is None or not p.is_relative_to(skip))]
    elif corpus.suffix.lower() in MANIFEST_SUFFIXES:
        items = _manifest_items(corpus)
    else:
        raise ApucodecError(f"{corpus}: expected a folder or a manifest ({', '.join(MANIFEST_SUFFIXES)}) with a "
                            f"'{PATH_COLUMN}' column")
    if not items:
        raise ApucodecError(f"{corpus}: lists no files")
    seen: dict[str, str] = {}
    for item in items:
        if item.path in seen:
            raise ApucodecError(f"{corpus}: lists {item.relpath} twice")
        seen[item.path] = item.relpath
    return sorted(items, key=lambda item: item.relpath)


def _manifest_items(manifest: Path) -> list[CorpusItem]:
    """Paths from a manifest; relative ones are taken relative to the manifest's folder."""
    paths = _manifest_paths(manifest)
    base = manifest.resolve().parent
    items = []
    for row, value in enumerate(paths, start=1):
        if not isinstance(value, str) or not value.strip():
            raise ApucodecError(f"{manifest}: row {row} has no '{PATH_COLUMN}'")
        path = Path(value)
        items.append(CorpusItem(str(path if path.is_absolute() else base / path), value))
    return items


def _manifest_paths(manifest: Path) -> list[Any]:
    suffix = manifest.suffix.lower()
    try:
        if suffix == ".csv":
            with open(manifest, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if PATH_COLUMN not in (reader.fieldnames or []):
                    raise ApucodecError(f"{manifest}: has no '{PATH_COLUMN}' column (columns: "
                                        f"{', '.join(reader.fieldnames or []) or 'none'})")
                return [row[PATH_COLUMN] for row in reader]
        if suffix == ".jsonl":
            values = []
            with open(manifest, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if not isinstance(record, dict) or PATH_COLUMN not in record:
                        raise ApucodecError(f"{manifest}: line {line_no} has no '{PATH_COLUMN}'")
                    values.append(record[PATH_COLUMN])
            return values
        from apucodec.dataset.deps import pyarrow_parquet

        table = pyarrow_parquet().read_table(manifest)
        if PATH_COLUMN not in table.column_names:
            raise ApucodecError(f"{manifest}: has no '{PATH_COLUMN}' column (columns: "
                                f"{', '.join(table.column_names)})")
        return table.column(PATH_COLUMN).to_pylist()
    except ApucodecError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise ApucodecError(f"{manifest}: unreadable manifest ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: not a Parquet file
        raise ApucodecError(f"{manifest}: unreadable manifest ({first_line(exc)})") from None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def probe_item(path: str) -> dict[str, Any]:
    """Content hash and header facts of one file; `error` holds a one-line reason when it is not usable audio.

    Runs in a Ray task. Never raises for a bad file: one bad file must not stop a corpus-sized job.
    """
    from apucodec.io.audio_read import probe

    out: dict[str, Any] = {"sha256": "", "duration": 0.0, "sample_rate": 0, "error": ""}
    try:
        out["sha256"] = sha256_of(path)
        if os.path.getsize(path) == 0:
            out["error"] = "empty file (0 bytes)"
            return out
        info = probe(path)
        out.update(duration=info.seconds, sample_rate=info.sample_rate)
    except ApucodecError as exc:
        out["error"] = strip_path(str(exc), path)
    except OSError as exc:
        out["error"] = f"cannot read ({exc.strerror or type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - whatever one file does, the job goes on
        out["error"] = f"cannot probe ({first_line(exc, with_type=True)})"
    return out


def strip_path(message: str, path: str) -> str:
    """The error without the path prefix (the failures table has a path column of its own)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message
