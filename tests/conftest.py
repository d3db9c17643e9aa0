"""Shared fixtures: tiny exported model directories and a tiny checkpoint.

`runtime_model` is the checked-in model (tests/data/tiny-model, made by scripts/build_test_model.py; live step
4 frames, offline 8): the runtime tests load it without torch. `tiny_checkpoint` is a saved tiny codec
(tests.tiny_models: random weights, codebooks initialised from generated audio) and `tiny_model_dir` that
checkpoint exported in this session (steps 4 and 64); both need torch.
All are read-only for tests: copy them before modifying anything.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime_models import CHECKED_IN_MODEL
from tests.tiny_models import export_on_one_thread, tiny_codec, torch_threads

# The export and training side's packages (apucodec[export], [train], [quantize]). A runtime-only install has none
# of them; a test module that imports one at its top then skips with the reason instead of failing to collect.
OPTIONAL_SIDE = ("torch", "onnx", "onnxsim", "quark")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # noqa: ANN201 - a CollectReport
    """A test module that cannot be imported because an optional package is *not installed* is skipped, naming
    the package; any other import failure (that package installed but broken included) still fails."""
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        found = re.search(r"No module named '([\w.]+)'", report.longreprtext)
        package = found.group(1).split(".")[0] if found else None
        if package in OPTIONAL_SIDE and importlib.util.find_spec(package) is None:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, f"Skipped: needs {package} (not installed)")
    return report


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
    pytest.importorskip("torch")
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
