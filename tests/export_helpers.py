"""Helpers shared by the export tests (owned by the export tests; not fixtures, so other modules are unaffected)."""

from __future__ import annotations

from pathlib import Path


def leftovers(parent: Path) -> list[str]:
    """Hidden staging folders an export might have left beside its output."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))
