"""Activation ranges for the CPU INT8 quantizer, from a one-pass stream of feeds.

Two ways: ORT's own calibrators (`minmax`, `percentile`, `entropy`), fed chunk by chunk so memory is bounded by the
chunk, or the exact tail percentiles of calibration/tail_ranges.py (`tail`). Either returns ORT's TensorsData, which
`quantize_static` reads as a calibration cache. `FeedReader` adapts the caller's feed dicts to ORT's reader protocol
and checks them against the graph's inputs.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.errors import ApucodecError

PERCENTILE = 99.999
CHUNK_FEEDS = 4

FeedCallback = Callable[[int], None]
Feed = dict[str, np.ndarray]


class FeedReader:
    """Adapts an iterable of feed dicts to ORT's CalibrationDataReader protocol (get_next() -> dict | None).

    Checks each feed against the graph's inputs, so a caller's typo fails with the names instead of deep inside ORT.
    """

    def __init__(self, feeds: Iterable[Feed], input_names: Sequence[str], source: Path,
                 on_feed: FeedCallback | None = None) -> None:
        self._feeds: Iterator[Feed] = iter(feeds)
        self._names = set(input_names)
        self._source = source
        self._on_feed = on_feed
        self.count = 0

    def get_next(self) -> Feed | None:
        feed = next(self._feeds, None)
        if feed is None:
            return None
        if set(feed) != self._names:
            raise ApucodecError(f"{self._source}: calibration feed has inputs {sorted(feed)}, the graph takes "
                                f"{sorted(self._names)}")
        self.count += 1
        if self._on_feed is not None:
            self._on_feed(self.count)
        return {name: np.ascontiguousarray(value) for name, value in feed.items()}

    def rewind(self) -> None:  # ORT calls it only for multi-pass algorithms we do not enable
        raise ApucodecError("calibration feeds are a one-pass stream; this quantizer option needs a second pass")


def ort_methods(q: Any) -> dict[str, Any]:
    """ORT's CalibrationMethod for each of our method names (`tail` hands ORT min/max ranges)."""
    return {"minmax": q.CalibrationMethod.MinMax, "percentile": q.CalibrationMethod.Percentile,
            "entropy": q.CalibrationMethod.Entropy, "tail": q.CalibrationMethod.MinMax}  # tail: min/max ranges


def tail_calibration(source: Path, work: Path, reader: FeedReader, op_types: Sequence[str]) -> Any:
    from apucodec.calibration.tail_ranges import tail_ranges, tensors_data

    progress, reader._on_feed = reader._on_feed, None  # reported per feed run, not per feed read
    feeds = list(iter(reader.get_next, None))
    if not feeds:
        raise ApucodecError(f"{source}: no calibration feeds were given")
    return tensors_data(tail_ranges(source, feeds, op_types, work=work, on_feed=progress))


class _Chunk:
    """At most `size` feeds of `reader`, then None: one `collect_data` call's worth.

    ORT's calibrators keep every intermediate tensor of a `collect_data` call in memory until it returns (the
    histogram methods keep whole activations), so feeding them in chunks bounds memory by the chunk, not the
    calibration set. (ORT 1.32's own CalibMaxIntermediateOutputs drops the collected data instead of merging it.)
    """

    def __init__(self, first: Feed, reader: FeedReader, size: int) -> None:
        self._first: Feed | None = first
        self._reader = reader
        self._left = size

    def get_next(self) -> Feed | None:
        if self._left <= 0:
            return None
        self._left -= 1
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._reader.get_next()


def calibrate_ranges(q: Any, source: Path, work: Path, reader: FeedReader, method: str, op_types: Sequence[str],
                     chunk: int = CHUNK_FEEDS) -> Any:
    """Per-tensor activation ranges (ORT's TensorsData) over every feed of `reader`, collected chunk by chunk."""
    options: dict[str, Any] = {"symmetric": False}
    if method == "percentile":
        options["percentile"] = PERCENTILE
    calibrator = q.create_calibrator(source, list(op_types), augmented_model_path=str(work / "augmented.onnx"),
                                     calibrate_method=ort_methods(q)[method], extra_options=options)
    # ORT's histogram calibrators print their progress on stdout; keep it out of the CLI's output
    with contextlib.redirect_stdout(io.StringIO()):
        while (first := reader.get_next()) is not None:
            calibrator.collect_data(_Chunk(first, reader, chunk))
        if reader.count == 0:
            raise ApucodecError(f"{source}: no calibration feeds were given")
        ranges = calibrator.compute_data()
    del calibrator
    return ranges
