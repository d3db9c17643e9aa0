"""A file descriptor as a binary file whose write failures are recorded instead of raised (apucodec.io.outputs).

libsndfile calls `write` from C through cffi, where a Python exception would be printed as a traceback and lost, so
the error is kept and re-raised as one line when the output's block ends.
"""

from __future__ import annotations

import io
import os


class GuardedRaw(io.RawIOBase):
    """An fd as a binary file whose write failures are recorded (and returned as 0 bytes) instead of raised."""

    def __init__(self, fd: int, swallow: bool = True) -> None:
        super().__init__()
        self.fd = fd
        self.swallow = swallow  # False under io.Buffered*: a 0-byte write would make it retry forever
        self.error: OSError | None = None

    def fileno(self) -> int:
        return self.fd

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            os.lseek(self.fd, 0, os.SEEK_CUR)
            return True
        except OSError:
            return False

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        data = os.read(self.fd, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self.error is not None:
            if not self.swallow:
                raise self.error
            return 0
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            self.error = exc
            if not self.swallow:
                raise
        return done

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def close(self) -> None:  # the descriptor belongs to OutputFile
        pass

    def check(self) -> None:
        """Raise the recorded write failure, if any (as OSError, for `open_output` to phrase)."""
        if self.error is not None:
            raise self.error
