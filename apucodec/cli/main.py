"""The `apucodec` click group.

Commands are imported only when invoked (click's documented lazy-loading pattern), so `apucodec run` never pays
for — or requires — the training stack that `apucodec train` needs. Every user-facing failure is an
ApucodecError, printed as one line on stderr with a non-zero exit and no traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys

import click

from apucodec import __version__
from apucodec.errors import ApucodecError

# command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "bench": "apucodec.cli.bench:bench",
    "cache": "apucodec.cli.cache:cache",
    "decode": "apucodec.cli.codec:decode",
    "doctor": "apucodec.cli.doctor:doctor",
    "quantize": "apucodec.cli.quantize:quantize",
    "quantize-encoder": "apucodec.cli.quantize:quantize_encoder",
    "encode": "apucodec.cli.codec:encode",
    "eval": "apucodec.cli.eval:eval_command",
    "run": "apucodec.cli.codec:run",
    "stream": "apucodec.cli.stream:stream",
    "train": "apucodec.cli.train:train",
    "export": "apucodec.cli.export:export",
    "listen": "apucodec.cli.listen:listen",
    "pull": "apucodec.cli.pull:pull",
    "tokenize": "apucodec.cli.tokenize:tokenize",
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
            from apucodec.io.path_names import printable

            click.echo(f"error: {printable(str(exc))}", err=True)  # a non-UTF-8 file name prints as \xNN
            sys.exit(1)
        except OSError as exc:  # a named file the checks did not foresee (a 304-byte name, EIO): still one line
            if exc.filename is None:
                raise
            from apucodec.io.path_names import shown

            click.echo(f"error: {shown(exc.filename)}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: no output was written", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("terminated (SIGTERM): no output was written", err=True)
            sys.exit(143)


class Terminated(BaseException):
    """SIGTERM as an exception, so `timeout`, `docker stop` and systemd get the same cleanup as Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    raise Terminated


def install_signal_handlers() -> None:
    """SIGTERM raises `Terminated`; SIGXFSZ is ignored so `ulimit -f` makes a write fail with EFBIG (one line)
    instead of killing the process with a core dump and leaving a half-written file's name behind."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apucodec")
def cli() -> None:
    """APU-Codec: a neural audio codec split across an AMD Ryzen AI APU's NPU, CPU and GPU."""


def main() -> None:
    install_signal_handlers()
    try:
        cli()
    except Terminated:  # arrived outside a command (while importing): nothing was written yet
        click.echo("terminated (SIGTERM): no output was written", err=True)
        _exit_now(143)
    except SystemExit as exc:
        if exc.code in (130, 143):  # interrupted: skip interpreter teardown while ORT threads may still run
            _exit_now(exc.code)
        raise


def _exit_now(code: int) -> None:
    """Exit without running C++ static destructors under live onnxruntime threads ('terminate called without an
    active exception'); every Python-level cleanup (temp files, outputs) has already run by now."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
