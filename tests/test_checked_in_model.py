"""The checked-in tiny model (tests/data/tiny-model) is what scripts/build_test_model.py makes, so it cannot rot.

The runtime tests load it without torch. Fast checks: every file matches its manifest sha256, and the manifest
describes the script's RECIPE (config, step sizes). The third check (~10 s, needs torch) exports the recipe again
with this apucodec and compares the bytes: a change to the exporter's output or to the recipe fails here, naming
the script to run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from apucodec.contract.config import preset
from apucodec.model.directory import load_model_dir
from apucodec.model.verified_hashes import sha256_file
from tests.runtime_models import CHECKED_IN_MODEL

REPO = Path(__file__).resolve().parents[1]
REBUILD = "run: python scripts/build_test_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("build_test_model", REPO / "scripts" / "build_test_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_model_verifies_and_describes_the_recipe():
    recipe = _script().RECIPE
    model = load_model_dir(CHECKED_IN_MODEL)  # every file's sha256 against the manifest
    assert model.config == preset(recipe["preset"]), REBUILD
    for stage in ("encoder", "decoder"):
        assert model.step_sizes(stage) == recipe["step_frames"], REBUILD
    assert {p.name for p in CHECKED_IN_MODEL.iterdir()} == {e.name for e in model.files.values()} | {
        "manifest.json"}, "stray files in tests/data/tiny-model"
    size = sum(p.stat().st_size for p in CHECKED_IN_MODEL.iterdir())
    assert size < 1.5 * 2**20, f"tests/data/tiny-model grew to {size} bytes"


def test_loading_it_needs_no_torch():
    code = ("import sys, apucodec\n"
            f"c = apucodec.load({str(CHECKED_IN_MODEL)!r}, encoder_ep='cpu', decoder_ep='cpu', threads=1)\n"
            "import numpy as np\n"
            "y = c.decode(c.encode(np.zeros(3000, np.float32)))\n"
            "assert y.shape == (3000,)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_exporting_the_recipe_again_gives_the_same_bytes(tmp_path):
    pytest.importorskip("torch")
    rebuilt = load_model_dir(_script().export(tmp_path / "model"))
    checked_in = load_model_dir(CHECKED_IN_MODEL)
    assert rebuilt.model_id == checked_in.model_id, REBUILD
    assert {r: e.sha256 for r, e in rebuilt.files.items()} == {r: e.sha256 for r, e in checked_in.files.items()}, \
        REBUILD
    for name in (e.name for e in checked_in.files.values()):
        assert sha256_file(tmp_path / "model" / name) == sha256_file(CHECKED_IN_MODEL / name), f"{name}: {REBUILD}"
    assert rebuilt.manifest.streaming.to_dict() == checked_in.manifest.streaming.to_dict(), REBUILD
