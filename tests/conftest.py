"""Shared fixtures: tiny exported model directories and a tiny checkpoint.

`runtime_model` is the checked-in model (tests/data/tiny-model, made by scripts/build_test_model.py; live step
4 frames, offline 8): the runtime tests load it without torch. `tiny_checkpoint` is a saved tiny codec
(tests.tiny_models: random weights, codebooks initialised from generated audio) and `tiny_model_dir` that
checkpoint exported in this session (steps 4 and 64); both need torch.
All are read-only for tests: copy them before modifying anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime_models import CHECKED_IN_MODEL
from tests.tiny_models import export_on_one_thread, tiny_codec, torch_threads


@pytest.fixture(scope="session", autouse=True)
def _private_user_cache(tmp_path_factory: pytest.TempPathFactory):
    """The runtime's per-user caches (optimized graphs, verified hashes) go to this session's folder, not the
    user's ~/.cache; child processes inherit it."""
    patch = pytest.MonkeyPatch()
    patch.setenv("APUCODEC_CACHE_DIR", str(tmp_path_factory.mktemp("user_cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def runtime_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checked-in tiny model (a test that writes into it by mistake cannot change the repository)."""
    import shutil

    out = tmp_path_factory.mktemp("runtime_model") / "model"
    shutil.copytree(CHECKED_IN_MODEL, out)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from apucodec.codec.checkpoint import save_checkpoint
    from apucodec.dsp.signals import mixture

    model = tiny_codec(1234, mixture(44100, 44100))
    path = tmp_path_factory.mktemp("tiny_checkpoint") / "tiny.pt"
    save_checkpoint(path, model, step=1)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_on_one_thread(tiny_checkpoint, tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """For a module of tiny-model tests: threading costs more than it saves on a shared 2-core box."""
    with torch_threads(1):
        yield
