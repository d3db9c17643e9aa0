"""Rebuild the bundled default model's PyTorch weights from its original graphs, and re-export it as step graphs.

    python scripts/recover_bundled_model.py [--commit 148b4b8] [--old-dir DIR] [--checkpoint OUT.pt]
                                            [--out apucodec/models/default] [--verify-only]

The bundled model (apucodec/models/default, model ea4c4503deae223b) was trained on a rented GPU; only its exported
format-1 graphs were kept, not its checkpoint. Those graphs are weight-norm-folded plain convolutions, so their
initializers *are* the effective weights: `scripts/weight_recovery.py` maps them, in graph order and with every shape
and attribute checked, onto an APUCodec of the manifest's config built with norm="none"; the codebooks come from
codebooks.npy (float16 on disk, as trained-then-exported, so nothing is lost).

The original graphs (9 MB of FP32 weights, too big to keep beside the step graphs) are read from git history at
--commit, or from --old-dir (a copy of the format-1 folder). Before anything is written, the recovered torch
encoder/decoder must reproduce the original graphs on ORT (windows of real and synthetic audio) to float noise.
Then the model is exported with the step graphs (4 and 128 frames) into --out, keeping its MODEL.md, and the new
manifest's export.source records where the weights came from and the original export's facts. The INT8 encoder is
not made here: run `apucodec quantize-encoder` on the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from weight_recovery import compare_with_graphs, recover_codec  # noqa: E402  (scripts/weight_recovery.py, beside this)

from apucodec.codec.checkpoint import save_checkpoint  # noqa: E402
from apucodec.contract.config import CodecConfig  # noqa: E402
from apucodec.errors import ApucodecError  # noqa: E402
from apucodec.io.audio_read import read_audio  # noqa: E402
from apucodec.model.directory import load_model_dir  # noqa: E402

SOURCE_COMMIT = "148b4b8"  # the last commit with the format-1 bundled model
BUNDLED = "apucodec/models/default"
OLD_FILES = ("manifest.json", "encoder.onnx", "decoder.onnx", "codebooks.npy")
# Graphs written by an export; every other file of the folder (MODEL.md) is kept.
EXPORT_SUFFIXES = (".onnx", ".npy", ".json", ".weights")
MIN_SNR_DB = 100.0  # float32 noise between ORT and torch is ~120-140 dB; a wrong weight is far below 0 dB
EXAMPLE = REPO / "examples" / "hello.wav"


def read_old_files(commit: str, old_dir: Path | None) -> tuple[dict[str, bytes], str]:
    """The format-1 folder's bytes, from a folder or from git history; and where they came from."""
    if old_dir is not None:
        return {name: (old_dir / name).read_bytes() for name in OLD_FILES}, str(old_dir)
    full = _git("rev-parse", f"{commit}^{{commit}}").decode().strip()
    return {name: _git("show", f"{full}:{BUNDLED}/{name}") for name in OLD_FILES}, f"git {full}"


def _git(*args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise ApucodecError(f"git {' '.join(args)}: failed ({detail.decode(errors='replace').strip() or exc}); "
                            "a shallow clone lacks the history: pass --old-dir") from None
    return done.stdout


def check_hashes(files: dict[str, bytes], manifest: dict[str, Any]) -> dict[str, str]:
    """Every old file against the old manifest's sha256 (a swapped file would recover the wrong weights)."""
    hashes = {}
    for entry in manifest["files"].values():
        if entry["name"] in files:
            digest = hashlib.sha256(files[entry["name"]]).hexdigest()
            if digest != entry["sha256"]:
                raise ApucodecError(f"{entry['name']}: sha256 does not match the format-1 manifest")
            hashes[entry["name"]] = digest
    return hashes


def comparison_windows(samples: int) -> dict[str, np.ndarray]:
    """Windows of the graphs' static length: the middle of the example recording, and a loud chirp with noise."""
    audio, _ = read_audio(EXAMPLE, 44100)  # the bundled model codes at 44.1 kHz
    start = max(0, (audio.size - samples) // 2)
    speech = np.zeros(samples, np.float32)
    piece = audio[start:start + samples]
    speech[:piece.size] = piece
    t = np.arange(samples) / 44100
    rng = np.random.default_rng(0)
    chirp = 0.5 * np.sin(2 * np.pi * (100 + 4000 * t) * t) + 0.05 * rng.standard_normal(samples)
    return {"hello.wav middle": speech, "chirp + noise": chirp.astype(np.float32)}


def provenance(old: dict[str, Any], hashes: dict[str, str], origin: str, errors: dict[str, Any]) -> dict[str, Any]:
    """export.source of the new manifest: what the weights were recovered from, and the original export's facts."""
    export = old.get("export", {})
    return {
        "format": "recovered",
        "recovered_from": {
            "model_id": old["model_id"], "format_version": old["format_version"], "origin": origin,
            "files": hashes, "script": "scripts/recover_bundled_model.py",
            "method": "weight-norm-folded Conv/ConvTranspose initializers mapped in graph order onto a norm='none' "
                      "APUCodec of the same config (every shape and attribute checked); codebooks from codebooks.npy",
            "verification": {"reference": "format-1 graphs on ORT CPU EP vs recovered torch", "windows": errors},
        },
        "original": {
            **export.get("source", {}),
            "norm": old["codec"]["norm"],
            "weight_norm_folded": export.get("weight_norm_folded"),
            "exporter": export.get("exporter"), "simplifier": export.get("simplifier"), "opset": export.get("opset"),
            "producers": old.get("producers", {}),
            "int8_encoder": {"name": "encoder.int8.onnx", "preset": old.get("quantization", {}).get("preset"),
                             "calibration": old.get("quantization", {}).get("calibration"),
                             "retired": "a window graph; re-quantize the step graph (apucodec quantize-encoder)"},
            "training": "see MODEL.md (recipe: scripts/train_default_model.sh)",
        },
    }


def install(exported: Path, out: Path) -> None:
    """Replace the exported files of `out` by those of `exported`, keeping everything else (MODEL.md)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in out.iterdir():
        if path.is_file() and path.suffix in EXPORT_SUFFIXES:
            path.unlink()
    for path in exported.iterdir():
        shutil.copy2(path, out / path.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default=SOURCE_COMMIT)
    parser.add_argument("--old-dir", type=Path, default=None, help="a format-1 model folder instead of git history")
    parser.add_argument("--out", type=Path, default=REPO / BUNDLED)
    parser.add_argument("--checkpoint", type=Path, default=None, help="also save the recovered checkpoint here")
    parser.add_argument("--verify-only", action="store_true", help="recover and compare; write nothing")
    args = parser.parse_args()
    try:
        run(args)
    except ApucodecError as exc:
        sys.exit(f"error: {exc}")


def run(args: argparse.Namespace) -> None:
    files, origin = read_old_files(args.commit, args.old_dir)
    old = json.loads(files["manifest.json"])
    hashes = check_hashes(files, old)
    config = CodecConfig.from_dict(old["codec"])
    encoder, decoder = onnx.load_from_string(files["encoder.onnx"]), onnx.load_from_string(files["decoder.onnx"])
    with tempfile.TemporaryDirectory() as tmp:
        books_path = Path(tmp) / "codebooks.npy"
        books_path.write_bytes(files["codebooks.npy"])
        codebooks = np.load(books_path)
    model, facts = recover_codec(encoder, decoder, codebooks, config)
    print(f"recovered model {old['model_id']} from {origin}: " + ", ".join(
        f"{stage} {f['convolutions']} convolutions, {f['parameters']:,} parameters" for stage, f in facts.items())
        + f"; codebooks {tuple(codebooks.shape)} {codebooks.dtype}")

    window = old["files"]["encoder"]["inputs"][0]["shape"][-1]
    errors = {}
    for name, audio in comparison_windows(window).items():
        errors[name] = compare_with_graphs(model, encoder, decoder, audio)
        print(f"  {name}: " + "; ".join(f"{stage} max abs error {e['max_abs_error']:.2e} (peak {e['peak']:.2f}), "
                                        f"SNR {e['snr_db']:.1f} dB" for stage, e in errors[name].items()))
    worst = min(e["snr_db"] for w in errors.values() for e in w.values())
    if worst < MIN_SNR_DB:
        raise ApucodecError(f"recovered torch model differs from the original graphs (SNR {worst:.1f} dB < "
                            f"{MIN_SNR_DB:.0f} dB); nothing written")
    if args.checkpoint:
        save_checkpoint(args.checkpoint, model, int(old["export"]["source"].get("step", 0)),
                        recovered_from=old["model_id"])
        print(f"wrote {args.checkpoint} ({args.checkpoint.stat().st_size / 1e6:.1f} MB)")
    if args.verify_only:
        return

    from apucodec.export import export_model

    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        exported = export_model(model, Path(tmp) / "model", step_frames=(4, 128), codebooks_dtype="float16")
        exported.manifest.export.source = provenance(old, hashes, origin, errors)
        exported.save_manifest()
        install(exported.path, args.out)
    result = load_model_dir(args.out)
    latency = result.manifest.streaming.algorithmic_latency
    print(f"wrote {args.out}: model {result.model_id}; algorithmic latency "
          + ", ".join(f"{s}-frame step {v['samples']} samples ({v['ms']} ms)" for s, v in latency.items()))


if __name__ == "__main__":
    main()
