"""Run by torchrun from tests/test_train_ddp.py: train the tiny preset data-parallel, then dump what this rank ended
with (a digest of every parameter and buffer, the codebooks' own digest, and its first loss) to OUT/rank<N>.json."""

import hashlib
import json
import sys
from pathlib import Path

import torch

from apucodec.codec.train import TrainSettings, train
from apucodec.contract.config import preset


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    data, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    settings = TrainSettings(steps=steps, batch_size=2, segment_seconds=0.25, lr=1e-3, warmup_steps=2,
                             val_every=10**6, checkpoint_every=10**6, log_every=1)
    result = train(data, out / "ckpt.pt", preset("tiny"), settings)
    state = result.model.state_dict()
    report = {"rank": result.rank, "world_size": result.world_size, "state": digest(state),
              "codebooks": digest({k: v for k, v in state.items() if k.startswith("quantizer.")}),
              "first_loss": result.history[0]["loss"]}
    (out / f"rank{result.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
