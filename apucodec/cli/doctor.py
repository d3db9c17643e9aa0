"""`apucodec doctor`: what this machine can run, and where a model's stages would go (plain text or --json)."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--model", "model_option", metavar="DIR", default=None,
              help="Model directory to plan (default: $APUCODEC_MODEL, else ./apucodec-model if present).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--worker", "workers", multiple=True, metavar="STAGE=PYTHON",
              help="Plan a stage worker under PYTHON (as run's --worker; also read from the config file/manifest).")
def doctor(model_option: str | None, as_json: bool, workers: tuple[str, ...]) -> None:
    """Show onnxruntime's EPs, the WebGPU/Vulkan adapter, the NPU, package versions and the per-stage plan."""
    from apucodec.model.location import locate_model
    from apucodec.runtime.workers.plan import parse_worker_options
    from apucodec.tools.doctor import collect, format_text

    report = collect(locate_model(model_option), parse_worker_options(workers))
    click.echo(json.dumps(report, indent=2) if as_json else format_text(report))
