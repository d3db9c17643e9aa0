"""The exceptions for every problem a user can fix: `ApucodecError`, and the three kinds a caller tells apart —
`InputError` (what they passed), `ModelError` (the model directory), `PlacementError` (where a stage runs).

The CLI turns it into a single line on stderr and a non-zero exit, so raising it is how library code says "this is
the user's input, not our bug" — anything else is a real bug and keeps its traceback.
"""

import importlib
from pathlib import Path
from types import ModuleType


class ApucodecError(Exception):
    """A user-facing failure whose message is complete on its own line."""


class InputError(ApucodecError):
    """The caller's input cannot be coded: an array that is not audio, a bad rate, codes out of range, a bad file."""


class ModelError(ApucodecError):
    """The model directory cannot be used: missing, corrupt, a graph or precision it does not have."""


class PlacementError(ApucodecError):
    """A stage could not run where it was asked to (an EP missing with strict=True, a worker that failed)."""


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """What an error line quotes of a foreign exception: the first line of its text (libraries put tracebacks,
    hints and dumps below it), or its type's name when it has no text; `with_type` prefixes the type's name too."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return f"{type(exc).__name__}: {line}" if with_type else line


def require_file(path: Path, expected: str, missing: str = "no such file") -> Path:
    """The one-line errors every reader gives for an input path that is absent or a folder, before it parses.

    `expected` names what the file should have been ("an audio file"), so a folder passed by mistake says so.
    """
    if not path.exists():
        raise ApucodecError(f"{path}: {missing}")
    if path.is_dir():
        raise ApucodecError(f"{path}: is a directory, expected {expected}")
    return path


def require(module: str, extra: str) -> ModuleType:
    """Import an optional heavy dependency (torch, onnx, amd-quark, matplotlib, ray), or raise a one-line error
    naming the apucodec extra that provides it.

    The runtime stays installable with onnxruntime + numpy + audio I/O alone, so those are imported only by the
    commands that need them, and a missing one says what to install instead of surfacing an ImportError traceback.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ApucodecError(
            f"{module} is not installed ({exc.msg}); install it with: pip install 'apucodec[{extra}]'"
        ) from None
