"""Export of the EnCodec family: an `encodec` state dict (or an EncodecNet) -> the same model directory contract.

The steps mirror apucodec/export/model_export.py (load, steps, export/simplify/check, write, parity, manifest) and share
its graph, spec and manifest code; what differs is the network (apucodec/export/encodec_steps.py), the weight norm
(folded at load), and the step sizes: a graph of `start_frames` frames is always added when a smaller step is asked
for, because a stream's first step must span that many frames (EnCodec's reflect padding; see encodec_config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apucodec.codec.encodec.model import EncodecNet
from apucodec.contract.families import codec_from_config
from apucodec.contract.manifest import MANIFEST_NAME, ExportRecord, Manifest, Streaming, write_manifest
from apucodec.contract.steps import STAGES
from apucodec.errors import ApucodecError
from apucodec.export import parity
from apucodec.export.encodec_parity import check_encodec_parity
from apucodec.export.encodec_steps import EncodecStepNetwork, build_encodec_steps
from apucodec.export.specs import GraphSpec, step_spec
from apucodec.export.step_graphs import producers, step_file_entries, step_graphs
from apucodec.model.directory import file_entry, model_id
from apucodec.model.passes import StepLog


def start_note(start: int, cfg: Any) -> str:
    return (f"EnCodec pads each causal convolution's left with a reflection of the signal, so its first outputs "
            f"look {start - 1} frames ahead at the file's start: a stream's first step spans {start} frames "
            f"({1000 * start / cfg.frame_rate:.0f} ms, once); every later step is causal, one step of latency")


def export_encodec_into(stage: Path, model: EncodecNet, source_info: dict[str, Any], steps: StepLog, *,
                        step_frames: tuple[int, ...], opset: int, simplify: bool, codebooks_dtype: str) -> None:
    """Every export step for an EnCodec model, writing the finished directory's content into `stage`."""
    cfg = model.config
    with steps.step("load") as said:
        said.append(f"{source_info.get('checkpoint', 'in-memory model')} (encodec format, "
                    f"{model.param_count / 1e6:.2f}M parameters, {cfg.n_codebooks} x {cfg.codebook_size} RVQ, "
                    f"weight norm folded at load)")
    sizes = tuple(sorted(set(step_frames) | ({cfg.start_frames} if min(step_frames) < cfg.start_frames else set())))
    networks: dict[str, EncodecStepNetwork] = {}
    specs: dict[str, GraphSpec] = {}
    with steps.step("steps") as said:
        for name in STAGES:
            for s in sizes:
                net = build_encodec_steps(getattr(model, name), s, cfg.hop_length)
                if net.start_frames != cfg.start_frames:
                    raise ApucodecError(f"{name}: step network needs a {net.start_frames}-frame first step, the "
                                        f"config says {cfg.start_frames}")
                spec = step_spec(cfg, name, s, net.state_size)
                networks[spec.role], specs[spec.role] = net, spec
            said.append(f"{name}: causal (delay 0), state {net.state_size} values (LSTM (h, c) included), first "
                        f"step {cfg.start_frames} frames")
    steps.info(start_note(cfg.start_frames, cfg))
    protos, graph_info, exporter, simplifier = step_graphs(networks, specs, opset, simplify, steps)
    with steps.step("write") as said:
        paths = {role: stage / spec.filename for role, spec in specs.items()}
        import onnx

        for role, proto in protos.items():
            onnx.save(proto, str(paths[role]))
        paths["codebooks"] = stage / "codebooks.npy"
        np.save(paths["codebooks"], model.quantizer.codebooks.detach().cpu().numpy().astype(codebooks_dtype))
        said.append(", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in paths.values()))
    with steps.step("parity") as said:
        parities = check_encodec_parity(model, networks, paths)
        said.append(", ".join(f"{role} SNR {p.snr_db:.1f} dB (max abs err {p.max_abs_error:.1e})"
                              for role, p in parities.items()))
    for role, p in parities.items():
        if p.snr_db < parity.MIN_SNR_DB:
            raise ApucodecError(f"{specs[role].filename}: streamed ONNX output differs from whole-file PyTorch (SNR "
                                f"{p.snr_db:.1f} dB < {parity.MIN_SNR_DB:.0f} dB); export refused")
    files = step_file_entries(specs, networks, paths, graph_info)
    files["codebooks"] = file_entry(paths["codebooks"], "codebooks", shape=list(model.quantizer.codebooks.shape),
                                    dtype=codebooks_dtype)
    stage_nets = {s: networks[next(r for r in specs if specs[r].stage == s)] for s in STAGES}
    streaming = Streaming.compute(cfg.hop_length, cfg.sample_rate,
                                  {s: (net.delay_samples, net.state_size) for s, net in stage_nets.items()},
                                  list(sizes))
    manifest = Manifest(
        model_id=model_id(files), codec=codec_from_config(cfg), streaming=streaming, files=files,
        export=ExportRecord(source=source_info, exporter=exporter, opset=opset,
                            weight_norm_folded=model.weight_norm_folded, simplifier=simplifier,
                            parity={role: p.to_dict() for role, p in parities.items()},
                            caveats=[], seconds=steps.seconds),
        producers=producers(simplifier))
    write_manifest(stage / MANIFEST_NAME, manifest)
