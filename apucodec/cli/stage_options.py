"""Options for where stages run that every codec command shares: stage workers and the NPU precision.

Kept apart from the command bodies (cli/codec.py) so run, encode, decode and bench gain them through one decorator,
and `settings_overrides` turns them into SessionSettings fields.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from apucodec.cli.param_types import finite_float
from apucodec.errors import ApucodecError

PRECISIONS = ("auto", "fp32", "int8", "bf16")


def stage_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--worker STAGE=PYTHON|self (repeatable), --worker-timeout SECONDS, --precision auto|fp32|int8|bf16,
    --int8-floor DBFS, --ep-context-out FILE."""
    from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS
    from apucodec.runtime.stage_plan import DEFAULT_STEP_TIMEOUT_S

    options = [
        click.option("--worker", "workers", multiple=True, metavar="STAGE=PYTHON",
                     help="Run a stage (encoder, decoder) in a worker process under PYTHON (needs only numpy and "
                          "onnxruntime there), or 'self' for this interpreter (repeatable)."),
        click.option("--worker-timeout", type=finite_float(min=0, min_open=True),
                     default=DEFAULT_STEP_TIMEOUT_S, show_default=True,
                     help="Seconds a worker may take for one step before the run is stopped."),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                     help="Graph precision. auto: INT8 encoder on the NPU, CPU INT8 graphs on the CPU EP when "
                          "the model has them (quantize --target cpu), FP32 elsewhere; fp32: FP32 graphs on both "
                          "stages; int8 / bf16: the encoder's NPU INT8 graph / FP32 compiled to BF16 on the NPU."),
        click.option("--int8-floor", "int8_floor", type=float, default=DEFAULT_FLOOR_DBFS, show_default=True,
                     metavar="DBFS", help="With an INT8 graph, steps quieter than this run on the stage's FP32 "
                                          "graph (INT8 ranges come from louder audio); -inf: every step in INT8."),
        click.option("--ep-context-out", "ep_context_out", type=click.Path(dir_okay=False), default=None,
                     metavar="FILE", help="Also write what the Vitis AI EP compiles as an EP-context model FILE "
                                          "(weights embedded), to ship as the model directory's <role>_ctx graph."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_overrides(model: Any, workers: tuple[str, ...], worker_timeout: float, precision: str,
                       encoder_graph: str, ep_context_out: str | None = None,
                       int8_floor: float | None = None) -> dict[str, Any]:
    """SessionSettings fields from these options (workers also from the config file and the manifest)."""
    from apucodec.runtime.vitisai import ep_context_entries
    from apucodec.runtime.workers.plan import parse_worker_options, resolve_workers

    if precision != "auto" and encoder_graph not in ("auto", precision):
        raise ApucodecError(f"--precision {precision} and --encoder {encoder_graph} disagree; give one of them")
    from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS

    if int8_floor is not None and math.isnan(int8_floor):
        raise ApucodecError("--int8-floor must be a level in dBFS (or -inf), not nan")
    return {"int8_floor_dbfs": DEFAULT_FLOOR_DBFS if int8_floor is None else int8_floor,
            "workers": resolve_workers(parse_worker_options(workers), model.manifest),
            "worker_timeout": worker_timeout,
            "encoder_graph": precision if precision != "auto" else encoder_graph,
            "decoder_graph": "fp32" if precision == "fp32" else "auto",
            "ep_context": ep_context_entries(ep_context_out is not None, ep_context_out, embed=True)}
