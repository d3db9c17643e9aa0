"""Shared fixtures: a tiny exported model directory and a tiny checkpoint, built once per test session.

`tiny_checkpoint` is a saved preset-"tiny" codec with random weights whose codebooks were initialised from data
(one train-mode forward pass on generated audio), so RVQ codes are spread like a real model's rather than all
landing on a few random codewords. `tiny_model_dir` is that checkpoint exported with the default window geometry.
Both are read-only for tests: copy them before modifying anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from apucodec.codec.checkpoint import save_checkpoint
    from apucodec.codec.config import preset
    from apucodec.codec.model import APUCodec
    from apucodec.signals import mixture

    with torch.random.fork_rng():
        torch.manual_seed(1234)
        model = APUCodec(preset("tiny"))
        audio = torch.from_numpy(mixture(44100, 44100).astype('float32')).view(1, 1, -1)
        model.train()
        with torch.no_grad():
            model(audio)  # data-initialises the codebooks (and one EMA step)
        model.eval()
    path = tmp_path_factory.mktemp("tiny_checkpoint") / "tiny.pt"
    save_checkpoint(path, model, step=1)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from apucodec.export import export_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: threading costs more than it saves on a shared 2-core box
    try:
        out = tmp_path_factory.mktemp("tiny_model") / "model"
        export_model(tiny_checkpoint, out, log=None)
    finally:
        torch.set_num_threads(threads)
    return out
