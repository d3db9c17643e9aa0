"""What the CLI tests share: running a command, the one-line error contract, and the torch-free subprocess probe.

Said once here so that every command is held to the same contract: a bad input ends in exactly one `error:` line
on stderr, exit status 1, and no traceback; the deployed commands import none of the heavy training packages.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from apucodec.cli.main import cli

CPU = ["--encoder-ep", "cpu", "--decoder-ep", "cpu", "--threads", "1"]  # both graph stages on the CPU EP, 1 thread
HEAVY = ("torch", "onnx", "quark", "onnxsim", "onnxslim")  # what `run`/`bench`/`doctor` must never import
_LOADED = "LOADED-MODULES "  # the probe's last stderr line: the watched modules the child process had imported

# Runs `apucodec ARGS` in the child as the console script would, but keeps the process alive to report its modules;
# a click `ctx.exit(n)` comes back as the return value, so it becomes the exit status here.
CLI_CODE = textwrap.dedent("""
    from apucodec.cli.main import cli
    status = cli(sys.argv[1:], standalone_mode=False)
    sys.exit(status if isinstance(status, int) else 0)
""")


def invoke(*args: str, model: Path | None = None) -> Result:
    """`apucodec ARGS [--model MODEL]` in this process; exceptions other than the CLI's own propagate."""
    extra = ["--model", str(model)] if model else []
    return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)


def assert_one_line_error(result: Result, *fragments: str, progress: str | None = None) -> str:
    """Exit status 1, exactly one `error:` line on stderr holding every fragment, no traceback; returns the line.

    With `progress` (a line prefix, e.g. "[export] "), every other stderr line must be a progress line.
    """
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
    if progress is not None:
        others = [line for line in lines if not line.startswith(progress)]
        assert others == errors, result.stderr  # progress lines aside, the error is alone
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def modules_loaded(code: str, *argv: str, watch: tuple[str, ...] = HEAVY, **run: Any,
                   ) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    """Run `code` (with `argv`) in a fresh interpreter; the process and which of `watch` it had imported at the end.

    The list is taken in a `finally`, so a failing command still reports it; None means the child died before it
    could (a crash, a timeout kill). `run` goes to subprocess.run (env, cwd, timeout; 120 s by default).
    """
    script = (f"import sys\ntry:\n{textwrap.indent(code.strip(), '    ')}\nfinally:\n"
              f"    print({_LOADED!r} + repr(sorted(m for m in {watch!r} if m in sys.modules)), file=sys.stderr)\n")
    run.setdefault("timeout", 120)
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, **run)
    reports = [line for line in proc.stderr.splitlines() if line.startswith(_LOADED)]
    return proc, ast.literal_eval(reports[-1].removeprefix(_LOADED)) if reports else None


def cli_modules_loaded(*args: str, **run: Any) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    """`apucodec ARGS` in a fresh interpreter (see modules_loaded): did the command pull in a heavy package?"""
    return modules_loaded(CLI_CODE, *args, **run)
