"""Looking after the per-user cache (apucodec/model/user_cache.py): what it holds per kind, clearing it, and a size cap.

ONNX Runtime's optimized copy of a graph is larger than the graph (prepacked weights, fused layouts: 62 MB for the
bundled model's 6.4 MB graphs), and a new copy is written for every graph, onnxruntime version, option set and
CPU, so the cache only grew. Now the optimized graphs are capped ($APUCODEC_CACHE_MAX_MB, default 256 MB): after a
new entry is written, the least recently used ones beyond the cap are removed. "Used" is the time of the entry's
metadata file, touched on every cache hit; the graph file itself is never touched, since its recorded mtime/ctime
is what lets a hit skip re-hashing it (verified_hashes.py). Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from apucodec.model.user_cache import cache_root

MAX_ENV = "APUCODEC_CACHE_MAX_MB"
DEFAULT_MAX_MB = 256.0
KINDS = {  # sub-folder -> what it holds
    "ort-optimized": "ONNX Runtime's optimized graphs (CPU EP)",
    "verified": "verified file hashes",
    "vitisai": "compiled NPU graphs (Vitis AI EP)",
    "quark": "AMD Quark's compiled custom ops",
}


@dataclass(frozen=True)
class KindUsage:
    kind: str
    description: str
    path: Path
    files: int
    bytes: int


def _walk(path: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += (Path(dirpath) / name).lstat().st_size
                files += 1
    return files, size


def usage(root: Path | None = None) -> list[KindUsage]:
    """Files and bytes per kind (sub-folders that are none of the known kinds are reported as 'other')."""
    root = root or cache_root()
    out = []
    for kind, description in KINDS.items():
        files, size = _walk(root / kind)
        out.append(KindUsage(kind, description, root / kind, files, size))
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.name not in KINDS:
                files, size = _walk(child) if child.is_dir() else (1, child.lstat().st_size)
                out.append(KindUsage(child.name, "other", child, files, size))
    return out


def clear(root: Path | None = None, kinds: list[str] | None = None) -> int:
    """Remove the cache (or the given kinds); returns the bytes freed. Safe while nothing else runs apucodec; a
    run in progress only loses its cache entries and rebuilds them."""
    root = root or cache_root()
    freed = 0
    for entry in usage(root):
        if kinds and entry.kind not in kinds:
            continue
        freed += entry.bytes
        if entry.path.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.path.unlink()
    return freed


def max_bytes() -> int:
    """The optimized-graph cap: $APUCODEC_CACHE_MAX_MB (0: no cache kept beyond the entry just written)."""
    try:
        megabytes = float(os.environ.get(MAX_ENV, DEFAULT_MAX_MB))
    except ValueError:
        megabytes = DEFAULT_MAX_MB
    return int(max(0.0, megabytes) * 1e6)


def mark_used(graph: Path) -> None:
    """Record a cache hit on the entry's metadata file (never on the graph: see the module docstring)."""
    with contextlib.suppress(OSError):
        os.utime(graph.with_suffix(".json"))


def enforce_cap(folder: Path, keep: Path | None = None, cap: int | None = None) -> list[Path]:
    """Remove least recently used optimized graphs in `folder` until it fits `cap` bytes; `keep` (the entry just
    written) is never removed. Returns the graphs removed. Never raises: a cache problem must not fail a run."""
    cap = max_bytes() if cap is None else cap
    entries = []
    with contextlib.suppress(OSError):
        for graph in folder.glob("*.onnx"):
            if graph.name.startswith("."):
                continue  # another process's pending write
            meta = graph.with_suffix(".json")
            with contextlib.suppress(OSError):
                size = graph.stat().st_size + (meta.stat().st_size if meta.exists() else 0)
                used = meta.stat().st_mtime if meta.exists() else graph.stat().st_mtime
                entries.append((used, size, graph))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, graph in sorted(entries):
        if total <= cap:
            break
        if keep is not None and graph == keep:
            continue
        with contextlib.suppress(OSError):
            graph.with_suffix(".json").unlink(missing_ok=True)
            graph.unlink()
            total -= size
            removed.append(graph)
    return removed
