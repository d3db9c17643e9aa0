"""JSON from files someone else may have written (a model's manifest, a config file), read with bounds.

A manifest is a few kilobytes. Read without a bound, a manifest holding a 1 GiB string took 2 GB of memory before
anything looked at it, and one nested 100,000 levels deep ended in a RecursionError traceback (in the parser, or
later in whatever walks the parsed value). Here the size is checked from `stat` before a byte is read, the file must
be a regular file (a FIFO named manifest.json would block forever), and the nesting depth is checked iteratively
right after parsing, so nothing downstream ever recurses deeper than `max_depth`. Standard library only.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError

MAX_JSON_BYTES = 4 << 20  # 4 MiB: a manifest of the largest model here is ~20 KB
MAX_JSON_DEPTH = 64       # a manifest nests about 6 levels


def depth_of(value: Any, limit: int) -> int:
    """The nesting depth of parsed JSON, walked without recursion; stops counting once past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json_bounded(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES,
                      max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parsed JSON from `path`, or one line naming the file and why not (`what`: "manifest", "JSON config")."""
    path = Path(path)
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ApucodecError(f"{path}: unreadable {what} (not a regular file)")
            if st.st_size > max_bytes:
                raise ApucodecError(f"{path}: unreadable {what} ({st.st_size} bytes; at most {max_bytes} are read)")
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ApucodecError(f"{path}: unreadable {what} ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise ApucodecError(f"{path}: unreadable {what} (more than {max_bytes} bytes)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApucodecError(f"{path}: unreadable {what} ({exc})") from None
    except RecursionError:
        raise ApucodecError(f"{path}: unreadable {what} (nested deeper than Python can parse)") from None
    if depth_of(data, max_depth) > max_depth:
        raise ApucodecError(f"{path}: unreadable {what} (nested more than {max_depth} levels deep)")
    return data
