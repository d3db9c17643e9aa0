"""`apucodec quantize --target cpu` for a pooled-norm (seed) model: CPU INT8 whole-sequence graphs.

Offline, such a model runs its whole-sequence graphs (apucodec/runtime/segmented_stages.py), so those are the graphs
the CPU INT8 pass must quantize (`encoder.whole.cpu-int8`, `decoder.whole.cpu-int8`; the runtime picks them on the
CPU EP like any CPU INT8 graph). Calibration feeds are whole clips: each clip through the FP32 whole encoder, its
latent through the NumPy RVQ, the dequantized codes into the decoder, as `run` does. Clips are short (CLIP_SECONDS)
because ORT's calibrator keeps every intermediate tensor of a chunk of feeds in memory, and a whole-sequence
graph's tensors grow with the clip. As for step graphs, the audio ends and the exact GELUs stay float. Fidelity:
held-out clips through FP32 and INT8 whole graphs: latent SNR, code agreement, and the decoded audio's SNR.

Only the convolutions are quantized (cpu_int8.CONV_OP_TYPES, as for the step graphs' encoder): every other node of
these graphs is the GroupNorm's float arithmetic over the whole sequence, the GELU and the residual sums, and quantizing
them bought nothing but a Quantize/Dequantize pair per tensor around float kernels (ORT has no integer GroupNorm).
32.4M seed encoder, 5 s, CPU EP (node profile): FP32 12.8 s; every op type quantized 9.0 s (DequantizeLinear alone
34 %); convolutions only 6.5 s, with fewer roundings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.calibration.audio_edges import audio_edge_nodes
from apucodec.calibration.clips import CalibrationClips, collect_clips
from apucodec.calibration.cpu_int8 import CONV_OP_TYPES, CpuInt8Result, quantize_graph_cpu_int8
from apucodec.calibration.fidelity import cpu_session
from apucodec.calibration.gelu_nodes import gelu_node_names
from apucodec.contract.manifest import CpuInt8Record
from apucodec.contract.steps import STAGES, WHOLE_SEQUENCE, step_role
from apucodec.dsp.metrics import snr_db
from apucodec.model.directory import ModelDir, file_entry
from apucodec.model.passes import install_files, update_model_dir
from apucodec.runtime.rvq import NumpyRVQ

PRECISION = "cpu-int8"
CLIP_SECONDS = 0.5


@dataclass
class WholeInt8Result:
    model: ModelDir
    paths: dict[str, Path]
    graphs: dict[str, CpuInt8Result]
    calibration: CalibrationClips
    fidelity: dict[str, Any]
    total_seconds: float

    def lines(self) -> list[str]:
        f = self.fidelity
        out = [f"calibrated CPU INT8 ({self.graphs['encoder'].method}) whole-sequence graphs on "
               f"{len(self.calibration.calibration)} clips of up to {CLIP_SECONDS} s",
               f"fidelity on {f['evaluation_clips']} held-out clips: latent SNR {f['latent_snr_db']:.1f} dB, codes "
               f"equal {f['code_agreement'][0] * 100:.1f} %, decoded audio INT8 vs FP32 SNR "
               f"{f['int8_vs_fp32_output_snr_db']:.1f} dB"]
        out += [f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB) [{role}]" for role, p in self.paths.items()]
        return [*out, f"total {self.total_seconds:.1f} s"]


def _padded(clip: np.ndarray, hop: int) -> np.ndarray:
    out = np.zeros((1, 1, -(-clip.size // hop) * hop), np.float32)
    out[0, 0, : clip.size] = clip
    return out


def _codec(sessions: dict[str, Any], rvq: NumpyRVQ, clip: np.ndarray, hop: int) -> tuple[np.ndarray, ...]:
    """(encoder feed, latent, codes, decoder feed, decoded audio) of one clip through `sessions`."""
    audio = _padded(clip, hop)
    enc, dec = sessions["encoder"], sessions["decoder"]
    latent = enc.run(None, {enc.get_inputs()[0].name: audio})[0]
    codes = rvq.quantize(np.ascontiguousarray(latent[0].T))
    quantized = np.ascontiguousarray(rvq.dequantize(codes).T, dtype=np.float32)[None]
    decoded = dec.run(None, {dec.get_inputs()[0].name: quantized})[0]
    return audio, latent, codes, quantized, decoded


def quantize_whole_cpu(model: ModelDir, calib_folder: str | Path, clips: int, method: str, seed: int,
                       threads: int, status: Any) -> WholeInt8Result:
    started = time.perf_counter()
    import onnx

    fp32_roles = {stage: step_role(stage, WHOLE_SEQUENCE) for stage in STAGES}
    roles = {stage: step_role(stage, WHOLE_SEQUENCE, PRECISION) for stage in STAGES}
    clip = int(CLIP_SECONDS * model.config.sample_rate)
    status(f"collecting {clips} calibration clips of up to {CLIP_SECONDS} s from {calib_folder} (whole-sequence "
           "graphs: this model pools GroupNorm statistics)")
    calibration = collect_clips(calib_folder, clip, 8 * model.hop, count=clips, seed=seed,
                                rate=model.config.sample_rate)
    rvq = NumpyRVQ(model.codebooks())
    with update_model_dir(model, ".quantize-cpu-") as work:
        fp32 = {stage: cpu_session(model.path_of(fp32_roles[stage]), threads=threads) for stage in STAGES}
        feeds: dict[str, list[dict[str, np.ndarray]]] = {stage: [] for stage in STAGES}
        for c in calibration.calibration:
            audio, _, _, quantized, _ = _codec(fp32, rvq, c, model.hop)
            feeds["encoder"].append({fp32["encoder"].get_inputs()[0].name: audio})
            feeds["decoder"].append({fp32["decoder"].get_inputs()[0].name: quantized})
        staged, graphs, kept = {}, {}, {}
        for stage in STAGES:
            source = model.path_of(fp32_roles[stage])
            proto = onnx.load(str(source))
            edges, gelu = audio_edge_nodes(proto, stage), gelu_node_names(proto)
            kept[stage] = {"float_audio_edge_nodes": edges, "float_gelus": len(gelu) // 5}
            del proto
            status(f"{stage}: quantizing the whole-sequence graph's convolutions ({method} ranges, uint8 activations)")
            staged[stage] = work / f"{roles[stage]}.onnx"
            graphs[stage] = quantize_graph_cpu_int8(source, staged[stage], iter(feeds[stage]), method=method,
                                                    op_types=CONV_OP_TYPES, exclude_nodes=sorted(set(edges)),
                                                    gelu_nodes=gelu)
        del feeds
        status(f"scoring on {len(calibration.evaluation)} held-out clips")
        int8 = {stage: cpu_session(staged[stage], threads=threads) for stage in STAGES}
        fidelity = _fidelity(fp32, int8, rvq, calibration.evaluation, model.hop)
        report = {"target": "CPUExecutionProvider", "quantizer": "onnxruntime.quantization.quantize_static",
                  "whole_sequence": True,
                  "graphs": {stage: {"role": roles[stage], "source": fp32_roles[stage], **graphs[stage].to_dict(),
                                     **kept[stage]} for stage in STAGES},
                  "calibration": {"folder": str(calib_folder), "seed": seed, "clips_requested": clips,
                                  "clip_seconds": CLIP_SECONDS, "method": "whole clips through the FP32 "
                                  "whole-sequence graphs; decoder fed the dequantized codes",
                                  **calibration.summary()},
                  "fidelity": fidelity, "seconds": {"total": round(time.perf_counter() - started, 2)}}

        def record(targets: dict[str, Path]) -> None:
            for stage in STAGES:
                fp32_entry = model.files[fp32_roles[stage]]
                model.files[roles[stage]] = file_entry(
                    targets[roles[stage]], roles[stage], whole_sequence=stage, precision=PRECISION,
                    source=fp32_roles[stage], target="cpu", format="QDQ", inputs=fp32_entry.inputs,
                    outputs=fp32_entry.outputs, graph={"nodes": sum(graphs[stage].ops.values()),
                                                       "ops": graphs[stage].ops})
            model.manifest.cpu_int8 = CpuInt8Record.from_dict(report)

        paths = install_files(model, {roles[s]: (staged[s], staged[s].name) for s in STAGES}, record)
    return WholeInt8Result(model, paths, graphs, calibration, fidelity, time.perf_counter() - started)


def _fidelity(fp32: dict[str, Any], int8: dict[str, Any], rvq: NumpyRVQ, clips: list[np.ndarray],
              hop: int) -> dict[str, Any]:
    lat_ref, lat, agree, out_ref, out = [], [], [], [], []
    for clip in clips:
        _, latent_f, codes_f, _, audio_f = _codec(fp32, rvq, clip, hop)
        _, latent_q, codes_q, _, audio_q = _codec(int8, rvq, clip, hop)
        lat_ref.append(latent_f.reshape(-1))
        lat.append(latent_q.reshape(-1))
        agree.append(np.mean(codes_f == codes_q))
        out_ref.append(audio_f.reshape(-1))
        out.append(audio_q.reshape(-1))
    return {"evaluation_clips": len(clips), "latent_snr_db": round(snr_db(np.concatenate(lat_ref),
                                                                          np.concatenate(lat)), 2),
            "code_agreement": [round(float(np.mean(agree)), 4)],
            "int8_vs_fp32_output_snr_db": round(snr_db(np.concatenate(out_ref), np.concatenate(out)), 2),
            "method": "held-out clips through the FP32 and the INT8 whole-sequence graphs"}
