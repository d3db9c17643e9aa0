"""The one recipe for a tiny test codec, and torch thread pinning, shared by the conftest fixtures and test modules.

A tiny codec is preset "tiny" with random weights whose codebooks were initialised from data (one train-mode
forward pass, as the first training step does), so RVQ codes spread like a real model's rather than all landing on
a few random codewords. The seed and the audio are the caller's: each fixture keeps the exact model it always had.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Tiny convs run faster on one thread than on two contended ones (the CI box has 2 shared cores)."""
    torch = pytest.importorskip("torch")  # a runtime-only install: the test skips, naming torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_codec(seed: int, audio: np.ndarray, preset_name: str = "tiny") -> Any:
    """An eval-mode APUCodec whose codebooks were initialised from `audio` ([batch, samples] or [samples]).

    The global torch RNG is left as it was: the seed applies to this model only.
    """
    torch = pytest.importorskip("torch")

    from apucodec.codec.model import APUCodec
    from apucodec.contract.config import preset

    batch = torch.from_numpy(np.asarray(audio, dtype=np.float32)).reshape(-1, 1, np.shape(audio)[-1])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = APUCodec(preset(preset_name))
        model.train()
        with torch.no_grad():
            model(batch)  # the first training forward initialises the codebooks from data (and one EMA step)
    model.eval()
    return model


def export_on_one_thread(checkpoint: Path, folder: Path, **options: Any) -> Path:
    """`checkpoint` exported to `folder`/model (export_model's `options`, e.g. step_frames) on one torch thread."""
    from apucodec.export import export_model

    out = folder / "model"
    with torch_threads(1):
        export_model(checkpoint, out, log=None, **options)
    return out
