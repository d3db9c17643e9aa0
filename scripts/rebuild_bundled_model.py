"""Rebuild the bundled default model end to end, reproducibly, into apucodec/models/default (or --out).

    python scripts/rebuild_bundled_model.py --calib /work/shared/audio/train [--npu-calib /work/shared/audio/dev]
        [--out apucodec/models/default] [--from-stage recover|cpu-int8|npu-int8] [--skip-npu] [--seed 0]

Stages, each the project's own command, in a work folder that replaces --out only when every stage passed:
  1. recover: scripts/recover_bundled_model.py — the weights from the format-1 graphs in git history, checked against
     them, exported as FP32 step graphs (4 and 128 frames; whatever the exporter writes: shared external weights,
     NPU-list fixes), MODEL.md kept;
  2. cpu-int8: `apucodec quantize --target cpu --calib CALIB` — CPU INT8 encoder and decoder graphs for every
     exported step size (the live step's quantized with the offline step's ranges, so a stream and a one-shot call
     at INT8 compute alike; the encoder's latent projection float), 16 calibration clips, seed 0;
  3. npu-int8: `apucodec quantize-encoder --calib NPU_CALIB --preset xint8` — the NPU's INT8 encoder (Quark; ~45
     minutes on 2 cores).
--from-stage cpu-int8 starts from the current --out (its FP32 graphs kept) and redoes only the INT8 stages;
--skip-npu keeps --out's NPU graph when its source graph is unchanged (same sha256), else leaves it out.

The lead reruns this after merging export changes. The previous bundled CPU INT8 graphs used 16 clips of
/work/shared/audio/train (seed 0); the NPU encoder used /work/shared/audio/dev (64 steps, seed 0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "apucodec" / "models" / "default"
STAGES = ("recover", "cpu-int8", "npu-int8")


def _run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    done = subprocess.run(args, cwd=REPO)
    if done.returncode:
        sys.exit(f"error: stage failed ({done.returncode}): {' '.join(args)}")


def _apucodec(*args: str) -> None:
    _run(sys.executable, "-m", "apucodec", *args)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _drop_int8(work: Path, keep_npu: bool) -> None:
    """Remove the INT8 graphs (and their manifest entries) a rebuild is about to make again."""
    manifest = _manifest(work)
    for role, entry in list(manifest["files"].items()):
        precision = entry.get("precision")
        if precision == "cpu-int8" or (precision == "npu-int8" and not keep_npu):
            (work / entry["name"]).unlink(missing_ok=True)
            del manifest["files"][role]
    if not keep_npu:
        manifest.pop("npu_int8", None)
    manifest.pop("cpu_int8", None)
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calib", type=Path, required=True, help="calibration audio for the CPU INT8 graphs")
    parser.add_argument("--npu-calib", type=Path, default=None, help="for the NPU encoder (default: --calib)")
    parser.add_argument("--out", type=Path, default=BUNDLED)
    parser.add_argument("--from-stage", choices=STAGES, default="recover")
    parser.add_argument("--skip-npu", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npu-steps", type=int, default=64)
    args = parser.parse_args()
    out = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="apucodec-rebuild-", dir=out.parent) as tmp:
        work = Path(tmp) / "model"
        if args.from_stage == "recover":
            _run(sys.executable, str(REPO / "scripts" / "recover_bundled_model.py"), "--out", str(work))
            if (out / "MODEL.md").exists() and not (work / "MODEL.md").exists():
                shutil.copy2(out / "MODEL.md", work / "MODEL.md")
            old_npu = None
        else:
            shutil.copytree(out, work)
            old_npu = next((e for e in _manifest(work)["files"].values() if e.get("precision") == "npu-int8"), None)
            keep = args.skip_npu and old_npu is not None and args.from_stage == "cpu-int8"
            _drop_int8(work, keep_npu=keep)
        if args.from_stage in ("recover", "cpu-int8"):
            _apucodec("quantize", "--target", "cpu", "--model", str(work), "--calib", str(args.calib),
                      "--seed", str(args.seed))
        if not args.skip_npu:
            _apucodec("quantize-encoder", "--model", str(work), "--calib", str(args.npu_calib or args.calib),
                      "--preset", "xint8", "--steps", str(args.npu_steps), "--seed", str(args.seed))
        # the result must open and verify (every sha256) before it replaces anything
        _run(sys.executable, "-c",
             f"from apucodec.model.directory import load_model_dir; load_model_dir({str(work)!r})")
        backup = Path(tmp) / "previous"
        if out.exists():
            out.rename(backup)
        work.rename(out)
    files = {e["name"]: e["sha256"][:12] for e in _manifest(out)["files"].values()}
    print(f"rebuilt {out}: " + ", ".join(f"{name} {sha}" for name, sha in sorted(files.items())))


if __name__ == "__main__":
    main()
