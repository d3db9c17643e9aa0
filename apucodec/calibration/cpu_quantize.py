"""`apucodec quantize --target cpu`: CPU INT8 encoder *and* decoder step graphs, calibrated on real audio, scored.

The offline step graphs (the largest step S, `encoder.s{S}` / `decoder.s{S}`) are quantized with
onnxruntime.quantization (calibration/cpu_int8.py): no new dependency, and the result is what ORT's CPU EP runs as
integer kernels on any x86 (VNNI/AMX where present) or ARM CPU. Calibration items are real steps: each calibration
clip is streamed in order through the FP32 encoder step graph by the runtime's Stepper and every step's
{audio, state, bounds} recorded; its latent goes through the NumPy RVQ and the dequantized codes are streamed the
same way through the FP32 decoder step graph, recording {latent, state, bounds} (what the decoder sees at run
time). The bounds-mask arithmetic stays in float (calibration/step_nodes.py says why), and so does the audio end of
each graph, so audio is never 8-bit (calibration/audio_edges.py), and so does every exact GELU, so ORT runs it as
one fused kernel (calibration/gelu_nodes.py). Fidelity is measured by
streaming held-out clips through both INT8 graphs (calibration/fidelity.py).

Everything is staged in a hidden folder in the model directory; the graphs move into place and the manifest is
written only after both graphs loaded and were scored, and a failure restores the previous files and manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.calibration.audio_edges import audio_edge_nodes, latent_edge_nodes
from apucodec.calibration.clips import CalibrationClips, collect_clips
from apucodec.calibration.cpu_int8 import (
    CONV_OP_TYPES,
    DEFAULT_METHOD,
    WIDE_OP_TYPES,
    CpuInt8Result,
    quantize_graph_cpu_int8,
)
from apucodec.calibration.feeds import Feed
from apucodec.calibration.fidelity import FidelityReport, StepGraphSession, cpu_session, measure_fidelity
from apucodec.calibration.gelu_nodes import gelu_node_names
from apucodec.calibration.step_nodes import bounds_nodes
from apucodec.calibration.streams import graph_stepper, stream
from apucodec.contract.manifest import CpuInt8Record, FileEntry
from apucodec.contract.steps import STAGES, WHOLE_SEQUENCE, frames_for_length, step_role
from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir, file_entry, load_model_dir
from apucodec.model.passes import Log, StepLog, install_files, update_model_dir
from apucodec.runtime.onnx_step import onnx_step
from apucodec.runtime.rvq_projected import load_rvq

LOG = logging.getLogger("apucodec.quantize")
PRECISION = "cpu-int8"
# Steps per calibration clip: a start step, steady ones and the flush, as a file of a few seconds gives the runtime.
CLIP_STEPS = 4
# Calibration clips (each CLIP_STEPS steps + the flush, streamed through both graphs). The windowed pass measured
# that more is not better for static percentile ranges (rarer peaks widen them): 16 clips beat 32 and 64.
DEFAULT_CPU_CLIPS = 16
# Range method per stage when none is given. The encoder's codes flip on quiet frames first, and exact tail
# percentiles (calibration/tail_ranges.py) give them a finer grid: first-codebook agreement with FP32 on the bundled
# model 66% -> 80%, latent SNR 19.5 -> 21.7 dB (docs/bench/int8-agreement.md). The decoder was not re-measured.
STAGE_METHODS = {"encoder": "tail", "decoder": DEFAULT_METHOD}
# The encoder's codes are decisions that every extra rounding can flip; the decoder's output is audio, where the
# wider set's speed wins (cpu_int8.py says what each costs).
STAGE_OP_TYPES = {"encoder": CONV_OP_TYPES, "decoder": WIDE_OP_TYPES}
# Stages whose latent end stays float (audio_edges.latent_edge_nodes says why; measured in docs/bench).
FLOAT_LATENT: tuple[str, ...] = ("encoder",)

StatusCallback = Log


@dataclass
class CpuQuantizeResult:
    model: ModelDir
    paths: dict[str, Path]
    graphs: dict[str, CpuInt8Result]
    calibration: CalibrationClips
    fidelity: FidelityReport
    total_seconds: float

    def lines(self) -> list[str]:
        cal = self.calibration
        enc, dec = self.graphs["encoder"], self.graphs["decoder"]
        out = [f"calibrated CPU INT8 ({enc.method}) on {len(cal.calibration)} clips from {cal.files_used} files "
               f"streamed step by step: encoder {enc.feeds} steps in {enc.seconds:.1f} s, decoder {dec.feeds} "
               f"steps in {dec.seconds:.1f} s"]
        polyphase = len(self.graphs["decoder"].polyphase)
        if polyphase:
            out.append(f"decoder: {polyphase} ConvTranspose rewritten as polyphase Conv (integer kernels on the CPU)")
        out += self.fidelity.lines()
        for role, path in self.paths.items():
            out.append(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) [{role}]")
        out.append(f"total {self.total_seconds:.1f} s")
        return out


class FeedProgress:
    """Progress of one graph's calibration as log lines (and the status callback): every ~10 % and at the end,
    with elapsed time and an estimate of what is left, so it shows in a log file, not only on a terminal."""

    def __init__(self, label: str, total: int, status: StatusCallback) -> None:
        self.label, self.total, self.status = label, max(total, 1), status
        self.started = time.perf_counter()
        self.every = max(1, self.total // 10)

    def __call__(self, done: int) -> None:
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (self.total - done) if done < self.total else 0.0
        message = (f"{self.label}: calibration {done}/{self.total} steps, {elapsed:.1f} s"
                   + (f", ~{left:.0f} s left" if done < self.total else ""))
        LOG.info(message)
        self.status(message)


def record_cpu_int8(model: ModelDir, entries: dict[str, FileEntry], report: dict[str, Any]) -> None:
    """The manifest edit of a CPU INT8 pass: one files[role] entry per graph and a `cpu_int8` section."""
    model.files.update(entries)
    model.manifest.cpu_int8 = CpuInt8Record.from_dict(report)


def _install(model: ModelDir, staged: dict[str, Path], entry_fields: dict[str, dict[str, Any]],
             report: dict[str, Any]) -> dict[str, Path]:
    def record(targets: dict[str, Path]) -> None:
        record_cpu_int8(model, {role: file_entry(t, role, **entry_fields[role]) for role, t in targets.items()},
                        report)

    return install_files(model, {role: (path, path.name) for role, path in staged.items()}, record)


def record_steps(model: ModelDir, roles: dict[str, str], sessions: dict[str, Any],
                 clips: list[np.ndarray]) -> dict[str, list[Feed]]:
    """Per stage, every step feed the FP32 step graphs get when the clips are streamed through the codec in order:
    the encoder on the audio, the decoder on the dequantized codes of the encoder's latent (what it decodes at
    run time), each clip a fresh stream from zero state, flushed at its end."""
    rvq = load_rvq(model)
    feeds: dict[str, list[Feed]] = {stage: [] for stage in STAGES}
    for clip in clips:
        clip = np.asarray(clip, dtype=np.float32).reshape(-1)
        frames = frames_for_length(clip.size, model.hop)
        recorders = {stage: onnx_step(sessions[stage], recorded=feeds[stage]) for stage in STAGES}
        latent = stream(graph_stepper(model, roles["encoder"], recorders["encoder"]), clip[None], frames)
        codes = rvq.quantize(np.ascontiguousarray(latent.T))
        quantized = np.ascontiguousarray(rvq.dequantize(codes).T, dtype=np.float32)
        stream(graph_stepper(model, roles["decoder"], recorders["decoder"]), quantized, frames)
    return feeds


def quantize_cpu(model_path: str | Path, calib_folder: str | Path, clips: int = DEFAULT_CPU_CLIPS,
                 method: str | None = None, seed: int = 0, threads: int = 0,
                 exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (),
                 on_status: StatusCallback | None = None,
                 float_latent: Sequence[str] = FLOAT_LATENT) -> CpuQuantizeResult | Any:
    """Quantize the model directory's offline FP32 encoder and decoder step graphs for the CPU EP; record them.

    `clips` is the number of calibration clips (CLIP_STEPS steps each); held-out clips come on top. `method`
    sets both stages' ranges; None takes STAGE_METHODS (whole-sequence models: DEFAULT_METHOD).
    `exclude_nodes` must name nodes of both graphs' FP32 step graphs (rarely useful); bounds arithmetic is always
    kept in float, and so is the latent end of the stages in `float_latent` (audio_edges.latent_edge_nodes).

    Every other step size the model has (the live step) gets its CPU INT8 graphs too, quantized with the offline
    step's calibrated ranges (the graphs share their tensors), so a stream and a one-shot call of one Codec run
    INT8 graphs that compute the same integers.
    """
    started = time.perf_counter()
    status = StepLog(on_status).info
    model = load_model_dir(Path(model_path).absolute())   # refuses missing step graphs or a sha256 mismatch
    if model.has(step_role("encoder", WHOLE_SEQUENCE)):  # a GroupNorm model: offline it runs whole-sequence graphs
        from apucodec.calibration.whole_int8 import quantize_whole_cpu

        return quantize_whole_cpu(model, calib_folder, clips, method or DEFAULT_METHOD, seed, threads, status)
    step = max(model.step_sizes("encoder"))
    if step not in model.step_sizes("decoder"):
        raise ApucodecError(f"{model.path}: no decoder step graph of {step} frames to match encoder.s{step}")
    fp32_roles = {stage: step_role(stage, step) for stage in STAGES}
    roles = {stage: step_role(stage, step, PRECISION) for stage in STAGES}
    step_samples = step * model.hop
    clip_samples = CLIP_STEPS * step_samples
    status(f"collecting {clips} calibration clips of up to {clip_samples / model.config.sample_rate:.2f} s "
           f"({CLIP_STEPS} steps of {fp32_roles['encoder']}) from {calib_folder}")
    calibration = collect_clips(calib_folder, clip_samples, step_samples, count=clips, seed=seed,
                                rate=model.config.sample_rate)
    import onnx

    with update_model_dir(model, ".quantize-cpu-") as work:
        fp32 = {stage: cpu_session(model.path_of(fp32_roles[stage]), threads=threads) for stage in STAGES}
        status(f"streaming {len(calibration.calibration)} clips through {fp32_roles['encoder']} and "
               f"{fp32_roles['decoder']} to record the steps' inputs")
        feeds = record_steps(model, fp32_roles, fp32, calibration.calibration)
        staged = {stage: work / f"{roles[stage]}.onnx" for stage in STAGES}
        graphs: dict[str, CpuInt8Result] = {}
        float_nodes: dict[str, int] = {}
        edge_nodes: dict[str, list[str]] = {}
        gelu: dict[str, list[str]] = {}
        for stage in STAGES:
            source = model.path_of(fp32_roles[stage])
            graph = onnx.load(str(source))
            mask_nodes = bounds_nodes(graph)
            latent = latent_edge_nodes(graph, stage) if stage in float_latent else []
            edge_nodes[stage] = [n for n in [*audio_edge_nodes(graph, stage), *latent] if n not in mask_nodes]
            gelu[stage] = gelu_node_names(graph)
            float_nodes[stage] = len(mask_nodes)
            del graph
            stage_method = method or STAGE_METHODS[stage]
            kinds = "convolutions only" if STAGE_OP_TYPES[stage] == CONV_OP_TYPES else "convolutions and ops between"
            status(f"{stage}: quantizing {kinds} ({stage_method} ranges, uint8 activations, int8 per-channel weights; "
                   f"{len(mask_nodes)} bounds-mask nodes, {len(edge_nodes[stage])} at the audio end and "
                   f"{len(gelu[stage]) // 5} GELUs kept float)")
            excluded = sorted({*mask_nodes, *edge_nodes[stage], *exclude_nodes})
            ranges = work / f"{stage}.ranges.json"
            graphs[stage] = quantize_graph_cpu_int8(
                source, staged[stage], iter(feeds[stage]), method=stage_method, op_types=STAGE_OP_TYPES[stage],
                exclude_nodes=excluded, gelu_nodes=gelu[stage], exclude_op_types=exclude_op_types,
                on_feed=FeedProgress(stage, len(feeds[stage]), status), ranges_out=ranges)
            for other in model.step_sizes(stage):
                if other != step:
                    role = step_role(stage, other, PRECISION)
                    status(f"{stage}: the {other}-frame step graph, with the {step}-frame step's ranges")
                    staged[role] = work / f"{role}.onnx"
                    graphs[role] = quantize_graph_cpu_int8(
                        model.path_of(step_role(stage, other)), staged[role], iter(()), method=stage_method,
                        op_types=STAGE_OP_TYPES[stage], exclude_nodes=excluded, gelu_nodes=gelu[stage],
                        exclude_op_types=exclude_op_types,
                        ranges_in=ranges)
        del feeds

        status(f"scoring on {len(calibration.evaluation)} held-out clips, streaming both INT8 graphs")
        fidelity = measure_fidelity(
            model, StepGraphSession(fp32_roles["encoder"], fp32["encoder"]),
            StepGraphSession(roles["encoder"], cpu_session(staged["encoder"], threads=threads)),
            StepGraphSession(fp32_roles["decoder"], fp32["decoder"]), calibration.evaluation,
            int8_decoder=StepGraphSession(roles["decoder"], cpu_session(staged["decoder"], threads=threads)))
        entry_fields = {}
        for key, result in graphs.items():
            role = roles.get(key, key)
            source_role = fp32_roles.get(key, role.removesuffix(f".{PRECISION}"))
            entry_fields[role] = {
                **model.files[source_role].step_facts(),
                "precision": PRECISION, "source": source_role, "target": "cpu", "format": "QDQ",
                "graph": {"nodes": sum(result.ops.values()), "ops": result.ops}}
        report = {
            "target": "CPUExecutionProvider",
            "quantizer": "onnxruntime.quantization.quantize_static",
            "step_frames": step,
            "graphs": {stage: {"role": roles[stage], "source": fp32_roles[stage], **graphs[stage].to_dict(),
                               "float_bounds_nodes": float_nodes[stage],
                               "float_audio_edge_nodes": edge_nodes[stage], "float_latent": stage in float_latent,
                               "float_gelus": len(gelu[stage]) // 5} for stage in STAGES}
            | {role: {"role": role, "source": role.removesuffix(f".{PRECISION}"), **result.to_dict(),
                      "ranges_from": roles[role.split(".")[0]]}
               for role, result in graphs.items() if role not in STAGES},
            "calibration": {"folder": str(calib_folder), "seed": seed, "clips_requested": clips,
                            "clip_steps": CLIP_STEPS, "step_samples": step_samples,
                            "method": "clips streamed in order through the FP32 step graphs (Stepper); decoder fed "
                                      "the dequantized codes",
                            **calibration.summary()},
            "fidelity": fidelity.to_dict(),
            "seconds": {"total": round(time.perf_counter() - started, 2)},
        }
        paths = _install(model, {**{roles[s]: staged[s] for s in STAGES},
                                 **{k: v for k, v in staged.items() if k not in STAGES}}, entry_fields, report)
    return CpuQuantizeResult(model, paths, graphs, calibration, fidelity, time.perf_counter() - started)
