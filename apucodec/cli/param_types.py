"""Click parameter types that check what click's own types let through, with one `error:` line.

* `file_path()`: `Path("o.wav/")` is `o.wav`, so a user who typed a directory-like name used to get a file called
  o.wav. The text click receives still has the slash; it is refused (and over-long names) before converting.
* `finite_float()`: click.FloatRange accepts nan (every comparison with nan is false), so `bench --seconds nan`
  reached `int(nan)` and a traceback; nan and inf are refused by name here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from apucodec.errors import ApucodecError
from apucodec.io.path_names import check_file_name


class FilePath(click.Path):
    """click.Path(path_type=Path) for one file (input or output), refusing names that can never be a file."""

    def __init__(self, role: str = "output", **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)
        self.role = role

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            check_file_name(value, self.role)
        return super().convert(value, param, ctx)


def file_path(role: str = "output") -> FilePath:
    return FilePath(role)


class FiniteFloat(click.FloatRange):
    """click.FloatRange that refuses nan and +-inf (one line naming the option)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return super().convert(value, param, ctx)  # click's own message for text that is no number
        if not math.isfinite(number):  # before the range: click would call inf "out of range" in a usage error
            name = param.opts[0] if param is not None and param.opts else "value"
            raise ApucodecError(f"{name} must be a finite number, not {number}")
        return super().convert(value, param, ctx)


def finite_float(min: float | None = None, max: float | None = None, min_open: bool = False) -> FiniteFloat:
    return FiniteFloat(min=min, max=max, min_open=min_open)
