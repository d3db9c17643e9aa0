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


def stage_options(func: Callable[..., Any], stages: tuple[str, ...] = ("encoder", "decoder")) -> Callable[..., Any]:
    """--worker STAGE=PYTHON|self (repeatable), --worker-timeout SECONDS, --precision auto|fp32|int8|bf16,
    --int8-floor DBFS, --ep-context-out FILE. A command without the encoder (decode) hides the encoder-only ones
    (--ep-context-out; --precision int8/bf16) from --help; `refuse_unused` refuses them when given."""
    from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS
    from apucodec.runtime.stage_plan import DEFAULT_STEP_TIMEOUT_S

    encoder = "encoder" in stages
    precision_help = ("Graph precision. auto: INT8 encoder on the NPU, CPU INT8 graphs on the CPU EP when the model "
                      "has them (quantize --target cpu), FP32 elsewhere; fp32: FP32 graphs on both stages; int8 / "
                      "bf16: the encoder's NPU INT8 graph / FP32 compiled to BF16 on the NPU (refused without "
                      "one).") if encoder else \
        "Graph precision. auto: the CPU INT8 decoder on the CPU EP when the model has one, else FP32; fp32: FP32."

    options = [
        click.option("--worker", "workers", multiple=True, metavar="STAGE=PYTHON",
                     help="Run a stage (encoder, decoder) in a worker process under PYTHON (needs only numpy and "
                          "onnxruntime there), or 'self' for this interpreter (repeatable)."),
        click.option("--worker-timeout", type=finite_float(min=0, min_open=True),
                     default=DEFAULT_STEP_TIMEOUT_S, show_default=True,
                     help="Seconds a worker may take for one step before the run is stopped."),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                     metavar=None if encoder else "[auto|fp32]", help=precision_help),
        click.option("--int8-floor", "int8_floor", type=float, default=DEFAULT_FLOOR_DBFS, show_default=True,
                     metavar="DBFS", help="With an INT8 graph, steps quieter than this run on the stage's FP32 "
                                          "graph (INT8 ranges come from louder audio); -inf: every step in INT8."),
        click.option("--ep-context-out", "ep_context_out", type=click.Path(dir_okay=False), default=None,
                     metavar="FILE", hidden=not encoder,
                     help="Also write what the Vitis AI EP compiles as an EP-context model FILE (weights embedded), "
                          "to ship as the model directory's <role>_ctx graph."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# Options that only mean something for one stage, by parameter name -> how the user spelled it. The EP orders
# (--encoder-ep, --decoder-ep) are not here on purpose: they are the documented shared option set that one script
# passes to run, encode and decode alike, and an order for a stage that does not run changes nothing it could
# mean. These choose what a stage computes or writes, so giving them where that stage never runs is a mistake.
STAGE_ONLY = {"encoder": {"encoder_graph": "--encoder", "ep_context_out": "--ep-context-out"}}
NPU_PRECISIONS = ("int8", "bf16")


def refuse_unused(command: str, stages: tuple[str, ...], given: dict[str, Any]) -> None:
    """One line for an option the command would silently ignore (`decode --precision int8 --ep-context-out x`).

    `given` holds the options' values; only those the user actually set (command line or environment, as click
    records it) count, so a script that passes one option set to run/encode/decode keeps working with defaults.
    """
    ctx = click.get_current_context(silent=True)

    def set_by_user(name: str) -> bool:
        if ctx is None or name not in ctx.params:
            return given.get(name) not in (None, "auto", ())
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    for stage, options in STAGE_ONLY.items():
        if stage in stages:
            continue
        for name, flag in options.items():
            if set_by_user(name):
                raise ApucodecError(f"{command} does not run the {stage}: {flag} would be ignored; leave it out")
    precision = given.get("precision", "auto")
    if "encoder" not in stages and precision in NPU_PRECISIONS:
        raise ApucodecError(f"{command} does not run the encoder: --precision {precision} is the encoder's NPU "
                            "precision and would be ignored; use --precision auto or fp32")
    for value in given.get("workers", ()):
        stage = str(value).partition("=")[0].strip()
        if stage in ("encoder", "decoder") and stage not in stages:
            raise ApucodecError(f"{command} does not run the {stage}: --worker {value} would be ignored")


def check_npu_precision(asked: str, placement: Any) -> None:
    """int8 / bf16 are the NPU's precisions: when the encoder did not land on the Vitis AI EP, running the FP32
    graph (bf16) or the NPU's QDQ graph on a CPU instead (int8) is not what was asked, so it is refused, not done
    quietly. (`--precision auto` picks the CPU INT8 graph where the model has one; the library API can still force
    the NPU graph onto the CPU for accuracy checks.)"""
    from apucodec.runtime.eps import VITISAI, short_ep

    if asked not in NPU_PRECISIONS:
        return
    encoder = placement.stage("encoder")
    if encoder.ran_on != VITISAI:
        why = f" ({encoder.fallback_reason})" if encoder.fallback_reason else ""
        raise ApucodecError(f"--precision {asked} needs the NPU (Vitis AI EP), but the encoder would run on "
                            f"{short_ep(encoder.ran_on)}{why}; use --precision auto (CPU INT8 graphs where the "
                            "model has them) or fp32")


def settings_overrides(model: Any, workers: tuple[str, ...], worker_timeout: float, precision: str,
                       encoder_graph: str, ep_context_out: str | None = None,
                       int8_floor: float | None = None) -> dict[str, Any]:
    """SessionSettings fields from these options (workers also from the config file and the manifest)."""
    from apucodec.runtime.vitisai import ep_context_entries
    from apucodec.runtime.workers.plan import manifest_names_workers, parse_worker_options, resolve_workers

    if manifest_names_workers(model.manifest):
        click.echo(f"note: {model.path}: the manifest's 'workers' section is ignored (worker interpreters come "
                   "only from --worker, $APUCODEC_WORKERS or your config file)", err=True)

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
