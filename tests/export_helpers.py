"""Helpers shared by the export tests (owned by the export tests; not fixtures, so other modules are unaffected)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Tiny convs run faster on one thread than on two contended ones (the CI box has 2 shared cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def leftovers(parent: Path) -> list[str]:
    """Hidden staging folders an export might have left beside its output."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))
