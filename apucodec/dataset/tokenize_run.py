"""`tokenize`: a corpus to Parquet shards of codes on Ray Data, resumable, length-aware, never stopped by one file.

    list (driver) -> probe + sha256 (Ray tasks) -> plan (driver: skip done, dedup, sort by duration)
                  -> read + resample (Ray tasks) -> encode (actor pool, one runtime codec each)
                  -> shards (driver, atomic) -> failures.parquet, dataset.json

The driver writes the output, so OUT only has to exist where the driver runs; the workers only need to read the
corpus (a cluster's shared storage). Codes are tiny next to audio (2 bytes per code, ~86 frames a second), so
sending them back to one writer costs nothing and makes "a row is visible iff its shard is complete" easy to keep.

Work is sorted longest first: each actor call gets one file and the long ones start early, so the pool does not
end waiting on a single long file picked up last (the length-aware scheduling NeMo and Lhotse do with buckets).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.contract.config import codebooks_to_use
from apucodec.dataset import shards
from apucodec.dataset.cluster import check_reachable, ray_errors, ray_session
from apucodec.dataset.corpus import CorpusItem, list_corpus
from apucodec.dataset.encoder import ModelInfo, resolve_model
from apucodec.dataset.progress import Progress
from apucodec.errors import ApucodecError

ITEMS_PER_READ_TASK = 4
PROBE_CHUNK = 64  # files per probe task
LOCK_NAME = ".tokenize.lock"


@dataclass
class TokenizeOptions:
    model: str | Path | None = None
    codebooks: int | None = None     # default: all of the model's
    workers: int = 1                 # encoder actors
    threads: int = 1                 # onnxruntime intra-op threads (and logical CPUs) per actor
    shard_size: int = 1000           # rows per Parquet shard
    ray_address: str | None = None   # None: a local Ray started (and stopped) by this call
    precision: str = "fp32"          # apucodec.load()'s: fp32 gives the same codes on any machine


@dataclass
class TokenizeReport:
    listed: int = 0
    already_done: int = 0
    duplicates: int = 0
    encoded: int = 0
    failed: int = 0
    shards_written: int = 0
    audio_seconds: float = 0.0      # encoded by this run
    wall_seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def audio_hours_per_hour(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self, out: Path) -> str:
        return (f"tokenize: {self.encoded} encoded ({self.audio_seconds / 3600:.3f} audio-h, "
                f"{self.audio_hours_per_hour:.1f} audio-h/h) in {self.shards_written} new shards, "
                f"{self.already_done} already done, {self.duplicates} duplicate content, {self.failed} failed; "
                f"{self.wall_seconds:.1f} s -> {out}")


def tokenize(corpus: str | Path, out: str | Path, options: TokenizeOptions) -> TokenizeReport:
    """Encode every audio file of `corpus` not yet in `out` (see the module docstring)."""
    start = time.monotonic()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ApucodecError(f"{out}: exists and is not a folder")
    if not out.parent.is_dir():
        raise ApucodecError(f"{out}: parent folder {out.parent} does not exist")
    model = resolve_model(options.model, options.precision)
    n_codebooks = codebooks_to_use(options.codebooks or None, model.n_codebooks)
    if options.workers < 1 or options.threads < 1 or options.shard_size < 1:
        raise ApucodecError("--workers, --threads and --shard-size must be at least 1")
    items = list_corpus(corpus, exclude=out)
    check_reachable(options.ray_address)
    created = not out.exists()
    out.mkdir(exist_ok=True)
    out = out.resolve()
    report = TokenizeReport(listed=len(items))
    try:
        with exclusive(out):
            # refuses an OUT of another model, codebook count or encoder graph (precision)
            done = shards.completed(out, model.model_id, n_codebooks, model.graph_precision, model.graph_sha256)
            with ray_session(options.ray_address, options.workers * options.threads), ray_errors():
                probed = _probe(items)
                todo, report.failures, duplicates, report.already_done = plan(probed, done)
                report.duplicates = len(duplicates)
                _encode(todo, out, model, n_codebooks, options, report)
            report.failed = len(report.failures)
            report.wall_seconds = time.monotonic() - start
            _finish(out, corpus, model, n_codebooks, options, report, duplicates)
    except ApucodecError:
        if created and not shards.shard_paths(out):  # leave nothing behind when nothing was done
            shutil.rmtree(out, ignore_errors=True)
        raise
    return report


def _finish(out: Path, corpus: str | Path, model: ModelInfo, n_codebooks: int, options: TokenizeOptions,
            report: TokenizeReport, duplicates: list[dict[str, str]]) -> None:
    """failures.parquet and dataset.json (counts and totals recomputed from all visible shards)."""
    shards.write_failures(out, report.failures)
    run = {"corpus": str(Path(corpus).resolve()), "listed": report.listed, "encoded": report.encoded,
           "already_done": report.already_done, "failed": report.failed, "wall_seconds": round(report.wall_seconds, 3),
           "audio_hours_per_hour": round(report.audio_hours_per_hour, 3), "workers": options.workers,
           "threads": options.threads, "ray": options.ray_address or "local"}
    shards.write_dataset_json(out, shards.summarize(out, model.summary, n_codebooks, report.failures, duplicates,
                                                    run))


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One tokenize run per OUT at a time: two would number their shards alike and replace each other's. The lock
    dies with the process, so a killed run never blocks the next; stale temp shards are removed under it."""
    import fcntl

    with open(out / LOCK_NAME, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ApucodecError(f"{out}: another apucodec tokenize run is writing here") from None
        shards.remove_partial_shards(out)
        yield


def _probe(items: list[CorpusItem]) -> list[dict[str, Any]]:
    """sha256 and header of every listed file, on Ray tasks (results are small: no audio comes back).

    Plain tasks rather than a Ray Data pipeline: this stage only fans out and gathers, and a Dataset's executor
    costs seconds to start on every run, resumes included.
    """
    import ray

    from apucodec.dataset.stages import probe_batch

    probe = ray.remote(num_cpus=1, max_retries=2)(probe_batch)
    chunk = max(1, min(PROBE_CHUNK, math.ceil(len(items) / 4)))
    futures = [probe.remote({"path": [item.path for item in items[i: i + chunk]],
                             "relpath": [item.relpath for item in items[i: i + chunk]]})
               for i in range(0, len(items), chunk)]
    probed: list[dict[str, Any]] = []
    for future in futures:
        probed.extend(_rows(ray.get(future)))
    return probed


def plan(probed: list[dict[str, Any]], done: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                    list[dict[str, str]], int]:
    """(work sorted longest first, probe failures, duplicate-content paths, count already done).

    `done` maps content sha256 -> the path it was encoded from. A file whose content is already encoded is done
    if it is that same path, else a duplicate (listed in dataset.json, not encoded twice); the first of several
    identical files in this run (by path) is the one encoded.
    """
    todo, failures, duplicates, already = [], [], [], 0
    owner = dict(done)
    for row in sorted(probed, key=lambda r: r["relpath"]):
        if row["error"]:
            failures.append(failure(row, "probe"))
        elif row["sha256"] in owner:
            if owner[row["sha256"]] == row["relpath"]:
                already += 1
            else:
                duplicates.append({"path": row["relpath"], "same_as": owner[row["sha256"]], "sha256": row["sha256"]})
        else:
            owner[row["sha256"]] = row["relpath"]
            todo.append(row)
    todo.sort(key=lambda r: (-r["duration"], r["relpath"]))
    return todo, failures, duplicates, already


def failure(row: dict[str, Any], stage: str) -> dict[str, Any]:
    return {"path": row["relpath"], "sha256": row["sha256"], "stage": stage, "reason": row["error"]}


def _encode(todo: list[dict[str, Any]], out: Path, model: ModelInfo, n_codebooks: int, options: TokenizeOptions,
            report: TokenizeReport) -> None:
    """Stream the work through read tasks and encoder actors; write each full shard as it fills."""
    if not todo:
        return
    import ray.data

    from apucodec.dataset.stages import EncodeActor, read_batch

    writer = shards.ShardWriter(out, options.shard_size)
    progress = Progress(len(todo), sum(row["duration"] for row in todo))
    blocks = max(1, math.ceil(len(todo) / ITEMS_PER_READ_TASK))
    # Read tasks reserve no CPU: the actors may hold every logical CPU of a small machine, and a read task that
    # waits for one would stall the pipeline; their number is bounded instead.
    ds = (ray.data.from_items(todo, override_num_blocks=blocks)
          .map_batches(read_batch, fn_kwargs={"sample_rate": model.sample_rate}, batch_size=None, num_cpus=0,
                       compute=ray.data.TaskPoolStrategy(size=min(blocks, max(2, 2 * options.workers))))
          .map_batches(EncodeActor, fn_constructor_kwargs={"model_path": model.path, "n_codebooks": n_codebooks,
                                                           "threads": options.threads,
                                                           "precision": options.precision,
                                                           "graph_sha256": model.graph_sha256},
                       batch_size=1, num_cpus=options.threads,
                       compute=ray.data.ActorPoolStrategy(size=options.workers)))
    written: set[str] = set()  # a batch Ray re-runs after losing a worker must not become a second row
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for row in _rows(batch):
                if row["sha256"] in written:
                    continue
                written.add(row["sha256"])
                if row["error"]:
                    report.failures.append(failure(row, row["stage"]))
                    progress.update(row["duration"], failed=True)
                    continue
                writer.add({"path": row["relpath"], "sha256": row["sha256"], "duration": row["duration"],
                            "sample_rate": row["sample_rate"], "samples": row["samples"], "frames": row["frames"],
                            "codebooks": n_codebooks, "codes": row["codes"], "model_id": model.model_id,
                            "precision": model.graph_precision, "graph_sha256": model.graph_sha256})
                report.encoded += 1
                report.audio_seconds += row["duration"]
                progress.update(row["duration"])
        writer.flush()
    finally:
        report.shards_written = writer.written_shards
        progress.close()


def _rows(batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A numpy batch as plain-Python rows (numpy scalars unwrapped)."""
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield {k: (v.item() if hasattr(v, "item") and not isinstance(v, bytes | str) else v)
               for k, v in zip(keys, values, strict=True)}
