"""The tokenize extra's imports, done lazily: the runtime core (`apucodec.runtime`, `import apucodec`) never needs
Ray or pyarrow, and a user without them gets one line naming the extra instead of an ImportError traceback."""

from __future__ import annotations

from types import ModuleType

from apucodec.errors import require

EXTRA = "tokenize"


def ray() -> ModuleType:
    require("ray.data", EXTRA)
    return require("ray", EXTRA)


def pyarrow() -> ModuleType:
    return require("pyarrow", EXTRA)


def pyarrow_parquet() -> ModuleType:
    pyarrow()
    return require("pyarrow.parquet", EXTRA)
