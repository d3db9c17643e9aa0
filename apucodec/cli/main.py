"""The `apucodec` click group.

Commands are imported only when invoked (click's documented lazy-loading pattern), so `apucodec run` never pays
for — or requires — the training stack that `apucodec train` needs. Every user-facing failure is an
ApucodecError, printed as one line on stderr with a non-zero exit and no traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from apucodec import __version__
from apucodec.errors import ApucodecError

# command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "bench": "apucodec.cli.bench:bench",
    "decode": "apucodec.cli.codec:decode",
    "doctor": "apucodec.cli.doctor:doctor",
    "quantize": "apucodec.cli.quantize:quantize",
    "quantize-encoder": "apucodec.cli.quantize:quantize_encoder",
    "encode": "apucodec.cli.codec:encode",
    "run": "apucodec.cli.codec:run",
    "train": "apucodec.cli.train:train",
    "export": "apucodec.cli.export:export",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ApucodecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: no output was written", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apucodec")
def cli() -> None:
    """APU-Codec: a neural audio codec split across an AMD Ryzen AI APU's NPU, CPU and GPU."""


def main() -> None:
    cli()
