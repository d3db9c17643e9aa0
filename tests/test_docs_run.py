"""Docs that run: every fenced ```python block in README.md and docs/*.md that follows a `<!-- runnable -->` line
is executed, each in a fresh interpreter in an empty folder, with the bundled model. A block that raises fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
BLOCK = re.compile(r"^" + re.escape(MARKER) + r"[ \t]*\n```python[^\n]*\n(.*?)^```", re.M | re.S)


def runnable_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        text = doc.read_text()
        for index, match in enumerate(BLOCK.finditer(text)):
            found.append((f"{doc.relative_to(REPO)}#{index}", match.group(1)))
        markers = re.findall(r"^" + re.escape(MARKER) + r"[ \t]*$", text, re.M)
        assert len(markers) == len(BLOCK.findall(text)), f"{doc}: a {MARKER} line not before a python fence"
    return found


def test_the_readme_has_a_runnable_block():
    assert any(name.startswith("README.md") for name, _ in runnable_blocks())


@pytest.mark.parametrize("name,code", runnable_blocks(), ids=[n for n, _ in runnable_blocks()])
def test_block_runs(name, code, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("APUCODEC_MODEL", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
