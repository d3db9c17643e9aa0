"""Export's extra work for a pooled-norm (seed, GroupNorm) model: exact offline graphs, and honest numbers for the
step graphs, which can only approximate it.

- whole-sequence graphs (apucodec/export/whole_sequence.py) are written, checked against the checkpoint's whole-file
  forward and refused under 80 dB, like the project's own step graphs; they are the model's `parity`;
- every step graph (running statistics, apucodec/export/running_norm.py) is streamed through the runtime's Stepper
  on ORT and compared with the same whole-file forward, on real recordings when export is given some
  (`--reference-audio`), else on the parity signals; the result is recorded under `approximate`, with the material
  it was measured on, and printed: an approximate graph is never passed silently nor called parity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from apucodec.codec.model import APUCodec
from apucodec.contract.manifest import FileEntry
from apucodec.dsp.metrics import snr_db
from apucodec.dsp.signals import signal
from apucodec.export import whole_sequence
from apucodec.export.parity import _streamed, cpu_session, net_stepper
from apucodec.export.streaming import StepNetwork
from apucodec.model.directory import file_entry
from apucodec.model.passes import StepLog

REFERENCE_SECONDS = 10.0   # per clip of reference audio: long enough for running statistics to settle
REFERENCE_CLIPS = 3
SYNTHETIC = ("speech_like", "mixture")  # without recordings: the parity signals closest to real audio
SYNTHETIC_SECONDS = 4.0


def reference_material(path: Path | None, sample_rate: int) -> tuple[list[np.ndarray], str]:
    """Up to REFERENCE_CLIPS clips of REFERENCE_SECONDS from the recordings at `path` (a file or a folder), else the
    parity signals; and a description of what was used (for the manifest)."""
    from apucodec.errors import ApucodecError
    from apucodec.io.audio_read import list_audio_files, read_audio

    if path is None:
        n = int(SYNTHETIC_SECONDS * sample_rate)
        return [signal(kind, n, sample_rate).astype(np.float32) for kind in SYNTHETIC], \
            f"synthetic signals ({', '.join(SYNTHETIC)}), {SYNTHETIC_SECONDS:.0f} s each (no --reference-audio)"
    files = [path] if path.is_file() else list_audio_files(path)
    if not files:
        raise ApucodecError(f"{path}: --reference-audio holds no audio files")
    clips, names = [], []
    for file in files[:REFERENCE_CLIPS]:
        audio, _ = read_audio(file, sample_rate)
        clips.append(audio[: int(REFERENCE_SECONDS * sample_rate)].astype(np.float32))
        names.append(file.name)
    seconds = sum(c.size for c in clips) / sample_rate
    return clips, f"real audio: {', '.join(names)} ({seconds:.1f} s)"


@torch.no_grad()
def measure_approximation(model: APUCodec, networks: dict[str, StepNetwork], paths: dict[str, Path],
                          clips: list[np.ndarray]) -> dict[str, dict[str, Any]]:
    """SNR of each step graph, streamed on ORT as the runtime streams it, against the whole-file forward: the
    encoder's latent, and the decoder's audio from the whole-file quantized latent; pooled over all clips."""
    cfg = model.config
    hop = cfg.hop_length
    refs: dict[str, list[np.ndarray]] = {role: [] for role in networks}
    gots: dict[str, list[np.ndarray]] = {role: [] for role in networks}
    sessions = {role: cpu_session(paths[role]) for role in networks}
    for clip in clips:
        frames = -(-clip.size // hop)
        audio = np.zeros((1, 1, frames * hop), dtype=np.float32)
        audio[..., : clip.size] = clip
        latent = model.encoder(torch.from_numpy(audio))
        quantized = model.quantizer.dequantize(model.quantizer.quantize_codes(latent))
        decoded = model.decoder(quantized).numpy()[0]
        for role, net in networks.items():
            stepper = net_stepper(sessions[role], net, cfg)
            if net.kind == "encoder":
                gots[role].append(_streamed(stepper, audio[0], frames, 4096).reshape(-1))
                refs[role].append(latent.numpy()[0].reshape(-1))
            else:
                gots[role].append(_streamed(stepper, quantized.numpy()[0].astype(np.float32), frames, 64).reshape(-1))
                refs[role].append(decoded.reshape(-1))
    out = {}
    for role, net in networks.items():
        per_clip = [round(snr_db(r, g), 2) for r, g in zip(refs[role], gots[role], strict=True)]
        out[role] = {"snr_db": round(snr_db(np.concatenate(refs[role]), np.concatenate(gots[role])), 2),
                     "snr_db_per_clip": per_clip, "step_frames": net.step_frames,
                     "compares": "latent" if net.kind == "encoder" else "audio (from the whole-file quantized latent)"}
    return out


def export_offline(model: APUCodec, modules: dict[str, Any], networks: dict[str, StepNetwork],
                   paths: dict[str, Path], stage_dir: Path, opset: int, simplify: bool, steps: StepLog,
                   reference_audio: Path | None) -> tuple[dict[str, FileEntry], dict[str, Any], dict[str, Any]]:
    """(whole-sequence file entries, their parity records, the step graphs' `approximate` section)."""
    cfg = model.config
    with steps.step("whole-sequence graphs") as said:
        whole_paths, facts = whole_sequence.export_whole(modules, model, stage_dir, opset, simplify)
        said.append(", ".join(f"{p.name} {facts[r]['nodes']} nodes" for r, p in whole_paths.items()))
    with steps.step("whole-sequence parity") as said:
        parities = whole_sequence.check_whole_parity(model, whole_paths)
        said.append(", ".join(f"{role} SNR {p.snr_db:.1f} dB (max abs err {p.max_abs_error:.1e})"
                              for role, p in parities.items()))
    whole_sequence.refuse_below_threshold(parities)
    files = {}
    for role, path in whole_paths.items():
        stage = role.split(".")[0]
        inputs, outputs = whole_sequence.io_entries(stage, cfg.latent_dim)
        files[role] = file_entry(path, role, whole_sequence=stage, precision="fp32", inputs=inputs, outputs=outputs,
                                 graph=facts[role])
    with steps.step("approximate streaming") as said:
        clips, material = reference_material(reference_audio, cfg.sample_rate)
        measured = measure_approximation(model, networks, paths, clips)
        said.append(", ".join(f"{role} SNR {m['snr_db']:.1f} dB" for role, m in measured.items()))
    for role, m in measured.items():
        steps.info(f"{role}: approximate streaming (running GroupNorm statistics), SNR {m['snr_db']:.1f} dB vs "
                   f"whole-file on {material}; offline commands run the exact whole-sequence graphs")
    approximate = {"method": "running GroupNorm statistics (count, mean, M2 per group, from the stream's start)",
                   "reference": "whole-file PyTorch", "material": material, "graphs": measured}
    return files, {role: p.to_dict() for role, p in parities.items()}, approximate
