"""A per-user cache of ONNX Runtime's optimized graphs, so a second `apucodec run` skips graph optimization.

Creating a session optimizes the graph first (constant folding, fusions, QDQ -> integer kernels, layout changes).
Measured with benchmarks/startup.py on the default 32.4M model's CPU INT8 graphs: session creation 0.29 s without
the cache, 0.15 s warm (with the file-hash records, `apucodec run` on 1 s: 1.99 -> 1.67 s). ORT can save the
optimized graph (`SessionOptions.optimized_model_filepath`) and load it later with optimization off, which is what
this module arranges: the first session for a graph writes it into the cache, later ones load it.

An optimized graph is only valid for what produced it, so the cache key covers the source graph's sha256, the
onnxruntime version, the EP, the session options that change the optimized graph (optimization level, config
entries) and the CPU (ORT's layout pass picks kernels by instruction set: AVX2 vs AVX-512 vs NEON graphs differ).
Only the CPU EP is cached: other EPs compile nodes into EP-specific blobs that ORT refuses to serialize.

Safety: entries are written to a unique temporary name and renamed into place (atomic on one filesystem), so
concurrent writers never expose a half-written file; each entry has a metadata file recording its key and the
optimized file's sha256, checked on every load (re-hashed only when the file changed, as model files are). A
mismatch (another version's file, a truncated copy, a hand edit) is a miss, never a load. The cache lives in the
user cache (apucodec/model/user_cache.py), under `ort-optimized/`, capped in size (apucodec/model/cache_admin.py: least
recently used entries go; `apucodec cache` shows and clears it). runtime/sessions.py routes every in-process CPU EP
session through it. Torch-free.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError
from apucodec.model.cache_admin import enforce_cap, mark_used
from apucodec.model.checks import external_data_refs
from apucodec.model.user_cache import CACHE_ENV, cache_root, note_cache_unusable  # noqa: F401 (CACHE_ENV re-exported)
from apucodec.model.verified_hashes import matches_sha256, sha256_file

SUBDIR = "ort-optimized"
# A graph whose weights live in a shared file beside it (ONNX external data, export/shared_weights.py) would be
# saved by ORT still pointing at that file by its relative name, which is not beside the cache entry. Naming an
# external-initializers file with a threshold no tensor reaches makes ORT write every initializer inline, so a
# cache entry stays one self-contained file, covered by its recorded sha256 (measured on ORT 1.32: no side file).
INLINE_CONFIG = {"session.optimized_model_external_initializers_file_name": "unused.external-data",
                 "session.optimized_model_external_initializers_min_size_in_bytes": str(2**62)}
CPU_EP = "CPUExecutionProvider"
CACHED_EPS = frozenset({CPU_EP})
KEY_VERSION = 1


def cpu_fingerprint() -> str:
    """Architecture plus the CPU's instruction-set flags (what ORT's kernel and layout choices depend on)."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    return hashlib.sha256(f"{platform.machine()}|{platform.processor()}|{flags}".encode()).hexdigest()[:16]


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def cache_key(graph_sha: str, ep: str, options: Mapping[str, str]) -> dict[str, Any]:
    """Everything an optimized graph depends on, as recorded in its metadata file."""
    return {"key_version": KEY_VERSION, "graph_sha256": graph_sha, "onnxruntime": _ort_version(), "ep": ep,
            "options": {str(k): str(v) for k, v in sorted(options.items())}, "cpu": cpu_fingerprint()}


def _entry_name(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class CachedGraph:
    """What to load and how: `path` (the cached optimized graph on a hit, else the source graph) and `options`,
    SessionOptions attributes to set (`apply` does it). On a miss, call `commit()` once the session exists (it
    publishes the optimized graph ORT wrote while creating it), or `discard()` if creating it failed."""

    path: Path
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)    # session config entries to add
    hit: bool = False
    reason: str = ""
    _pending: Path | None = None
    _final: Path | None = None
    _meta: dict[str, Any] | None = None

    def apply(self, sess_options: Any) -> Any:
        import onnxruntime as ort

        for name, value in self.options.items():
            if name == "graph_optimization_level":
                value = getattr(ort.GraphOptimizationLevel, value)
            setattr(sess_options, name, value)
        for key, value in self.config.items():
            sess_options.add_session_config_entry(key, value)
        return sess_options

    def commit(self) -> bool:
        """Move ORT's freshly written optimized graph into the cache; False if there was nothing usable."""
        pending, final, meta = self._pending, self._final, self._meta
        self._pending = None
        if pending is None or final is None or meta is None:
            return False
        try:
            if not pending.is_file() or pending.stat().st_size == 0 or external_data_refs(pending):
                return False  # a cached graph must be one self-contained file (see INLINE_CONFIG)
            meta = {**meta, "optimized_sha256": sha256_file(pending), "bytes": pending.stat().st_size}
            os.replace(pending, final)
            _write_atomic(final.with_suffix(".json"), json.dumps(meta, indent=1).encode())
            enforce_cap(final.parent, keep=final)  # least recently used entries beyond the size cap go
            return True
        except (OSError, ApucodecError) as exc:  # a read-only or full cache never breaks the session
            why = getattr(exc, "strerror", None) or exc
            note_cache_unusable("the optimized-graph cache", f"cannot write it: {why}")
            return False
        finally:
            pending.unlink(missing_ok=True)

    def forget(self) -> None:
        """Drop a cached entry that did not load back (truncated by a full disk, say): the next run rebuilds it."""
        if self.hit:
            for stale in (self.path, self.path.with_suffix(".json")):
                with contextlib.suppress(OSError):
                    stale.unlink()

    def discard(self) -> None:
        if self._pending is not None:
            self._pending.unlink(missing_ok=True)
            self._pending = None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _valid(final: Path, key: dict[str, Any], root: Path) -> str | None:
    """None if the cached entry at `final` is trustworthy for `key`, else why not. The file's sha256 is checked
    like a model file's: hashed again only if it changed since it last matched (verified_hashes.py)."""
    meta_path = final.with_suffix(".json")
    if not final.is_file() or not meta_path.is_file():
        return "not cached yet"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError):
        return "unreadable metadata"
    if not isinstance(meta, dict) or {k: meta.get(k) for k in key} != key:
        return "metadata records another key"
    recorded = meta.get("optimized_sha256")
    if not isinstance(recorded, str) or not matches_sha256(final, recorded, root):
        return "cached file does not match its recorded sha256"
    return None


def cached_session_path(graph_path: str | Path, graph_sha: str, ep: str,
                        options: Mapping[str, str] | None = None, optimization_level: str = "ORT_ENABLE_ALL",
                        root: Path | None = None) -> CachedGraph:
    """Where to load `graph_path` from for a session on `ep`, and the SessionOptions changes that go with it.

    `graph_sha` is the manifest's sha256 of the source graph (already verified by load_model_dir); `options` are
    the session config entries that change the optimized graph (not threads or spinning). Never raises for cache
    trouble: an unusable cache means loading the source graph as before.
    """
    source = Path(graph_path)
    try:
        return _cached_session_path(source, graph_sha, ep, options, optimization_level, root)
    except (OSError, RuntimeError, ValueError) as exc:  # an unreadable cache: load the source graph as before
        note_cache_unusable("the optimized-graph cache", getattr(exc, "strerror", None) or str(exc))
        return CachedGraph(source, reason=f"cache not usable ({exc})")


def _cached_session_path(source: Path, graph_sha: str, ep: str, options: Mapping[str, str] | None,
                         optimization_level: str, root: Path | None) -> CachedGraph:
    if ep not in CACHED_EPS:
        return CachedGraph(source, reason=f"{ep}: not cached (EP-compiled graphs cannot be serialized)")
    key = cache_key(graph_sha, ep, {**(options or {}), "graph_optimization_level": optimization_level})
    root = root or cache_root()
    folder = root / SUBDIR
    final = folder / f"{_entry_name(key)}.onnx"
    why = _valid(final, key, root)
    if why is None:
        mark_used(final)
        return CachedGraph(final, {"graph_optimization_level": "ORT_DISABLE_ALL"}, hit=True, reason="cached")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, pending = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".tmp.onnx", dir=folder)
        os.close(fd)
    except OSError as exc:
        note_cache_unusable("the optimized-graph cache", f"cannot write {folder}: {exc.strerror or exc}")
        return CachedGraph(source, reason=f"cache not writable ({exc.strerror or exc})")
    return CachedGraph(source, {"graph_optimization_level": optimization_level,
                                "optimized_model_filepath": pending}, dict(INLINE_CONFIG), hit=False, reason=why,
                       _pending=Path(pending), _final=final, _meta=key)


@contextlib.contextmanager
def cached_graph(graph_path: str | Path, graph_sha: str, ep: str, options: Mapping[str, str] | None = None,
                 optimization_level: str = "ORT_ENABLE_ALL", root: Path | None = None) -> Iterator[CachedGraph]:
    """`cached_session_path` as a context: the session created inside is committed to the cache on success and
    the pending file discarded on failure."""
    entry = cached_session_path(graph_path, graph_sha, ep, options, optimization_level, root)
    try:
        yield entry
    except BaseException:
        entry.discard()
        raise
    entry.commit()


def cpu_session_through_cache(ort: Any, path: Path, graph_sha: str, so: Any,
                              fresh_options: Callable[[], Any]) -> tuple[Any, bool]:
    """(A CPU EP session through the cache, whether it loaded a cached graph). If the cache's part fails (a cached
    file that does not load back, an optimized graph ORT could not write to a full disk), the source graph alone
    with `fresh_options()`, and one note: the cache only ever saves time."""
    graph: CachedGraph | None = None
    try:
        with cached_graph(path, graph_sha, CPU_EP) as graph:
            session = ort.InferenceSession(str(graph.path), graph.apply(so), providers=[CPU_EP])
        return session, graph.hit
    except Exception as exc:  # onnxruntime raises its own types (INVALID_PROTOBUF, Fail)
        if graph is None or not (graph.hit or "optimized_model_filepath" in graph.options):
            raise  # the cache had no part in it: the graph itself is the problem
        graph.forget()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        note_cache_unusable("the optimized-graph cache", f"{'a cached graph' if graph.hit else 'saving'} failed: "
                            f"{text.replace('[ONNXRuntimeError] : ', '')}")
    return ort.InferenceSession(str(path), fresh_options(), providers=[CPU_EP]), False
