"""What a file name given by the user may be, checked before anything touches the filesystem.

Three hostile shapes used to slip through:

* `o.wav/` (or `o.wav/.`) names a directory; pathlib silently drops the slash, so `Path("o.wav/")` became the file
  `o.wav`. The raw text is checked here, before any conversion to Path, and refused.
* A component longer than the filesystem allows (a 304-byte name) made `Path.exists()` raise ENAMETOOLONG deep in
  some check, i.e. a traceback. It is one line here, with the length and the limit.
* A name that is not UTF-8 (`$'\\xff.wav'`) is a valid POSIX path: Python carries it as surrogate escapes, and
  every consumer that wants bytes (libsndfile) gets `os.fsencode(path)`, never `str(path).encode()`.

Standard library only: the runtime, the API and the CLI all call it.
"""

from __future__ import annotations

import os
from pathlib import Path

NAME_MAX = 255  # bytes per path component on Linux filesystems (ext4, xfs, btrfs, tmpfs)


def shown(path: str | Path) -> str:
    """A path as an error line shows it: undecodable bytes as \\xNN escapes, so the line itself always prints."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """A message that may quote a non-UTF-8 path (surrogate escapes), made safe for any text stream."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_file_name(raw: str | Path, role: str = "output") -> None:
    """Refuse a name that can never be a file: a trailing '/' or '/.', or a component over NAME_MAX bytes."""
    text = os.fspath(raw)
    if isinstance(raw, str) and text not in ("-",) and (text.endswith(os.sep) or os.path.basename(text) in (".", "..")):
        raise _error(f"{shown(text)}: names a directory (ends in '{os.sep}' or '.'), expected an {role} file path")
    for part in Path(text).parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise _error(f"{shown(part[:40])}...: file name too long ({size} bytes; a name has at most {NAME_MAX})")


def sf_name(path: str | Path) -> bytes | str:
    """The path as libsndfile should get it: bytes (soundfile encodes str as strict UTF-8 and fails on the
    surrogate escapes of a non-UTF-8 name); `/proc/self/fd/N` spools pass through unchanged."""
    return os.fsencode(path)


def _error(message: str) -> Exception:
    from apucodec.errors import ApucodecError

    return ApucodecError(message)
