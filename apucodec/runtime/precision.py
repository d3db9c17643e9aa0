"""A Codec's precision, and the one way the API, the CLI and the dataset encoder open the engine behind it.

Why one place: codes are only comparable when the encoder graphs that made them are. "fp32" runs FP32 step graphs
on every stage and at every step size (the NPU is skipped: it compiles FP32 to BF16), so a one-shot call, a stream
and a tokenize run on any machine give the same codes. "int8" requires the encoder's INT8 graph (the NPU's on the
NPU, the CPU's on the CPU) at every step size the Codec opens; a model without one is a ModelError, never a silent
FP32 run. "auto" takes the fastest graph each stage has at each step size and says so in the log when a stream's
precision differs from the one-shot graphs'. "bf16" is the NPU's BF16 compile of the FP32 graph.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from apucodec.errors import ApucodecError, InputError, ModelError, PlacementError

log = logging.getLogger("apucodec")

PRECISIONS = ("fp32", "int8", "auto", "bf16")
INT8_GRAPHS = ("cpu-int8", "npu-int8")
# SessionSettings fields a caller (the CLI) may pass through load(**engine_options)
ENGINE_OPTIONS = ("ep_options", "worker_timeout", "ep_context", "bf16_optimize_level", "queue_depth", "warn",
                  "settings_fields")


def stage_precision(engine: Any, stage: str) -> tuple[str, str]:
    """(precision, sha256) of the graph `stage` runs; BF16 when the Vitis AI EP compiles an FP32 graph."""
    entry = engine.sessions[stage].record
    precision = entry.graph_precision
    if precision == "fp32" and engine.settings.encoder_graph == "bf16" and stage == "encoder" \
            and "VitisAI" in engine.placement.stage(stage).ran_on:
        precision = "bf16"
    return precision, entry.sha256


def _settings(model: Any, precision: str, options: dict[str, Any]) -> Any:
    from apucodec.runtime.eps import STAGE_PREFERENCES, VITISAI, parse_ep_list
    from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS
    from apucodec.runtime.stage_plan import SessionSettings
    from apucodec.runtime.workers.plan import parse_worker_options, resolve_workers

    eps = options.get("eps") or {}
    orders = {}
    for stage in ("encoder", "decoder"):
        given = eps.get(stage)
        if given is None:
            orders[stage] = list(STAGE_PREFERENCES[stage])
        else:
            try:
                orders[stage] = parse_ep_list(given if isinstance(given, str) else ",".join(given), stage)
            except ApucodecError as exc:
                raise InputError(str(exc)) from None
    if precision == "fp32":
        if eps.get("encoder") is not None and VITISAI in orders["encoder"]:
            raise InputError("precision 'fp32' cannot run on the NPU (the Vitis AI EP compiles FP32 graphs to "
                             "BF16); load(precision='auto' or 'int8') for the NPU")
        orders["encoder"] = [ep for ep in orders["encoder"] if ep != VITISAI]
    floor = options.get("int8_floor")
    if floor is not None and (not isinstance(floor, (int, float)) or math.isnan(floor)):
        raise InputError(f"int8_floor must be a level in dBFS (or -inf), got {floor!r}")
    workers = options.get("workers") or {}
    try:
        resolved = resolve_workers(parse_worker_options(f"{k}={v}" for k, v in workers.items()), model.manifest)
    except ApucodecError as exc:
        raise InputError(str(exc)) from None
    extra = {key: options[key] for key in ENGINE_OPTIONS
             if key in options and key not in ("queue_depth", "warn", "settings_fields")}
    graph = {"fp32": "fp32", "bf16": "bf16"}.get(precision, "auto")
    settings = SessionSettings(encoder_eps=orders["encoder"], decoder_eps=orders["decoder"], strict=bool(options.get(
        "strict")), threads=int(options.get("threads") or 0), workers=resolved, encoder_graph=graph,
        decoder_graph="fp32" if precision in ("fp32", "bf16") else "auto",
        int8_floor_dbfs=DEFAULT_FLOOR_DBFS if floor is None else float(floor), **extra)
    # the CLI's own spellings (--encoder int8: the NPU's graph wherever the encoder runs), applied last
    return dataclasses.replace(settings, **(options.get("settings_fields") or {}))


def open_engine(model: Any, precision: str, options: dict[str, Any], step_frames: int | None = None) -> Any:
    """The engine (apucodec.runtime.codec_runner.CodecEngine) for `model` at `precision`; errors sorted into InputError,
    ModelError and PlacementError."""
    from apucodec.runtime import codec_runner
    settings = _settings(model, precision, options)
    stages = tuple(options.get("stages") or ("encoder", "decoder"))
    warn = options.get("warn", log.warning)
    try:
        engine = codec_runner.CodecEngine(model, settings, warn=warn, stages=stages,
                                queue_depth=int(options.get("queue_depth") or 2), step_frames=step_frames)
    except (InputError, ModelError, PlacementError):
        raise
    except ApucodecError as exc:
        raise ModelError(str(exc)) from None
    if precision == "int8" and "encoder" in engine.sessions:
        graph, _ = stage_precision(engine, "encoder")
        if graph not in INT8_GRAPHS:
            step = engine.step_frames("encoder")
            engine_close(engine)
            raise ModelError(f"{model.path}: precision 'int8' asked for, but the encoder runs {graph} at the "
                             f"{step}-frame step ({engine.placement.stage('encoder').graph_reason}); run "
                             "'apucodec quantize --target cpu' (every step size) or load(precision='auto')")
    if step_frames is not None and "encoder" in engine.sessions:
        graph = stage_precision(engine, "encoder")[0]
        if graph in INT8_GRAPHS:
            log.warning("a stream at %d frames runs the %s encoder graph: its INT8 steps compute what one-shot "
                        "steps compute, but the INT8 floor judges quiet steps per step, so codes can differ around "
                        "quiet passages (bundled model, dev set: 3.9%% of first-codebook codes); int8_floor=-inf "
                        "or precision='fp32' gives identical codes", step_frames, graph)
    return engine


def engine_close(engine: Any) -> None:
    for session in getattr(engine, "sessions", {}).values():
        close = getattr(session, "close", None)
        if close is not None:
            close()
