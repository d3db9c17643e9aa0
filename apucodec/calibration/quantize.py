"""The quantize-encoder pass: step feeds -> Quark -> checks -> encoder.s{S}.npu-int8.onnx + manifest, atomically.

The graph quantized is the encoder's offline step graph (its largest step, the one the NPU runs files with). Its
calibration items are real steps: each calibration clip is streamed through the FP32 step graph in order and every
step's {audio, state, bounds} is recorded (apucodec/calibration/streams.py), so the caches and masks the quantizer
sees are the ones the runtime will produce. The bounds-mask arithmetic and the state's data movement (slicing the
packed state into caches and back) stay in float; step_nodes.py says why, with the measurements.

Memory: xint8's MinMSE search holds every activation of every calibration step, so its peak grows with steps x
step size x width: the tiny model (channels 4..32) at 128-frame steps reached ~7.6 GB with 6 steps, the bundled
model (16..192) passed 9 GB with 3; a8w8 (percentile histograms) quantized the bundled model on 8 steps at a
1.6 GB peak. A smaller offline step (`apucodec export --step-frames 4,32`) shrinks every calibration item.

Everything is staged in a hidden folder inside the model directory and only moved into place once the quantized
graph has loaded on the plain CPU EP, been scored on held-out clips and its NPU op check is done (the staging and
the install transaction are apucodec/model/passes.py's, shared with the CPU pass and the export). The previous INT8
graph (if any) is kept aside until the new manifest is written, so any failure — bad audio, a Quark error, Ctrl-C,
a full disk — leaves the directory exactly as it was. Quark writes a `quantized_info.csv` into the current
directory and caches calibration tensors on disk; both are confined to the staging folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.calibration.clips import CalibrationClips, collect_clips
from apucodec.calibration.custom_ops import custom_domains, find_library
from apucodec.calibration.fidelity import FidelityReport, StepGraphSession, cpu_session, measure_fidelity
from apucodec.calibration.graph_source import inline_copy
from apucodec.calibration.presets import (
    DEFAULT_PRESET,
    QUARK_VERSION_TESTED,
    import_quark,
    preset,
    quark_version,
)
from apucodec.calibration.quark_adapter import run_quark
from apucodec.calibration.reader import StepCallback
from apucodec.calibration.step_nodes import bounds_nodes, state_nodes
from apucodec.calibration.streams import first_steps, record_feeds, steps_per_clip
from apucodec.contract.manifest import GraphFacts, Quantization
from apucodec.contract.npu_ops import NpuOpReport, check_npu_ops, op_counts
from apucodec.contract.npu_presets import AUTO, choose_npu_preset
from apucodec.contract.steps import step_role
from apucodec.errors import ApucodecError, require
from apucodec.model.directory import ModelDir, file_entry, load_model_dir
from apucodec.model.passes import Log, StepLog, install_files, update_model_dir

PRECISION = "npu-int8"
OPSET = 17
DEFAULT_STEPS = 64
# Steps of audio per calibration clip: one start step, CLIP_STEPS - 1 steady ones, and the flush step(s), as a
# file of a few seconds gives the runtime.
CLIP_STEPS = 4

StatusCallback = Log


@dataclass
class QuantizeResult:
    model: ModelDir
    path: Path
    preset: str
    role: str
    calibration: CalibrationClips
    calibration_steps: int
    fidelity: FidelityReport
    npu: NpuOpReport
    quantize_seconds: float
    total_seconds: float
    custom_op_domains: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        cal = self.calibration
        skipped = f", {len(cal.files_skipped)} files skipped" if cal.files_skipped else ""
        silent = f", {cal.silent_skipped} near-silent clips skipped" if cal.silent_skipped else ""
        out = [f"calibrated {self.preset} on {self.calibration_steps} steps streamed over {len(cal.calibration)} "
               f"clips from {cal.files_used} files{skipped}{silent}; quantization took {self.quantize_seconds:.1f} s"]
        out += self.fidelity.lines()
        out += self.npu.lines()
        if self.custom_op_domains:
            out.append(f"uses {', '.join(self.custom_op_domains)} custom ops: sessions register Quark's library "
                       "(needs amd-quark and torch installed where it runs)")
        out.append(f"wrote {self.path} ({self.path.stat().st_size / 1e6:.2f} MB) in {self.total_seconds:.1f} s total")
        return out


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _install(model: ModelDir, staged: Path, role: str, entry_fields: dict[str, Any], quark_ver: str) -> Path:
    """Move the staged file in and write the manifest; restore the previous state if anything fails."""
    def record(targets: dict[str, Path]) -> None:
        model.files[role] = file_entry(targets[role], role, **entry_fields)
        model.manifest.producers = {**(model.manifest.producers or {}), "amd-quark": quark_ver}

    return install_files(model, {role: (staged, f"{role}.onnx")}, record)[role]


def _offline_role(model: ModelDir) -> str:
    """The encoder's offline step graph: the largest FP32 step the model directory has."""
    return step_role("encoder", max(model.step_sizes("encoder")))


def quantize_encoder(model_path: str | Path, calib_folder: str | Path, preset_name: str = DEFAULT_PRESET,
                     steps: int = DEFAULT_STEPS, seed: int = 0, conv2d: bool = False,
                     on_step: StepCallback | None = None, on_status: StatusCallback | None = None,
                     quiet: bool = True, threads: int = 0, float_bounds: bool = True,
                     float_state: bool = True, step_frames: int | None = None) -> QuantizeResult:
    """Quantize the model directory's offline FP32 encoder step graph with Quark; record it in the manifest.

    `steps` calibration steps are recorded by streaming clips of CLIP_STEPS steps through the FP32 graph.
    `float_bounds` / `float_state` keep the bounds-mask arithmetic / the state's data movement in float (the
    defaults; turning them off quantizes those nodes too, for measuring what keeping them in float buys).
    `step_frames` picks the step graph (default: the offline one); the NPU needs an INT8 graph for every step it
    runs, or the Vitis AI EP compiles the FP32 one to BF16, whose op list lacks LeakyRelu.
    """
    started = time.perf_counter()
    log = StepLog(on_status)
    if steps < 1:
        raise ApucodecError(f"--steps must be at least 1, got {steps}")
    model = load_model_dir(Path(model_path).absolute())   # refuses missing step graphs or a sha256 mismatch
    float_role = step_role("encoder", step_frames) if step_frames else _offline_role(model)
    if float_role not in model.files:
        raise ApucodecError(f"{model.path}: no {float_role} graph to quantize (encoder steps: "
                            f"{', '.join(map(str, model.step_sizes('encoder')))})")
    fp32 = model.files[float_role]
    if preset_name == AUTO:  # from the FP32 graph's ops (DAC's Sin rules out XINT8): contract/npu_presets.py
        preset_name, reason = choose_npu_preset(fp32.graph.ops if fp32.graph else None)
        log.info(f"preset {preset_name}: {reason}")
    chosen = preset(preset_name)
    role = step_role("encoder", fp32.step_frames, PRECISION)
    float_path = model.path_of(float_role)
    step_samples = fp32.step_frames * model.hop
    clip_samples = CLIP_STEPS * step_samples
    # Clips from files shorter than a clip give fewer steps, down to those of a one-step clip: draw enough for
    # that worst case; only as many as `steps` needs are streamed (the others cost one read each).
    clips_wanted = -(-steps // steps_per_clip(model, float_role, step_samples))
    rate = model.config.sample_rate
    log.info(f"collecting up to {clips_wanted} calibration clips of up to {clip_samples / rate:.2f} s ({CLIP_STEPS} "
             f"steps of {float_role}) from {calib_folder}")
    calibration = collect_clips(calib_folder, clip_samples, step_samples, count=clips_wanted, seed=seed, rate=rate)

    if find_library() is None:
        log.info("loading amd-quark: the first run on a machine compiles its custom-op library (about a minute)")
    quark_onnx = import_quark(verbose=not quiet)
    onnx = require("onnx", "quantize")
    quark_ver = quark_version()

    with update_model_dir(model, ".quantize-") as work:
        float_model = onnx.load(str(float_path))
        first = float_model.graph.input[0]
        dims = [d.dim_value for d in first.type.tensor_type.shape.dim]
        if dims != [1, 1, step_samples]:
            raise ApucodecError(f"{float_path}: input {first.name} has shape {dims}, not the manifest's step "
                                f"[1, 1, {step_samples}]")
        if _opset(float_model) != OPSET:
            log.info(f"note: {float_path.name} is opset {_opset(float_model)}; the NPU flow recommends {OPSET}")
        mask_nodes = bounds_nodes(float_model) if float_bounds else []
        cache_nodes = state_nodes(float_model) if float_state else []
        exclude = mask_nodes + cache_nodes
        source = inline_copy(float_model, float_path, work)  # Quark re-saves it elsewhere (graph_source.py)
        if conv2d:
            from apucodec.calibration.conv2d import conv1d_to_conv2d

            source = work / f"{float_role}.conv2d.onnx"
            onnx.save(conv1d_to_conv2d(float_model), str(source))
        del float_model

        log.info(f"streaming the calibration clips through {float_path.name} to record the steps' inputs")
        fp32_session = cpu_session(float_path, threads=threads)
        per_clip = record_feeds(fp32_session, model, float_role, calibration.calibration, limit=steps)
        calibration.keep_calibration(len(per_clip))
        feeds = first_steps(per_clip, steps)
        del per_clip
        if len(feeds) < steps:
            log.info(f"only {len(feeds)} calibration steps available (asked for {steps})")

        log.info(f"quantizing with {chosen.name} ({chosen.description})")
        staged = work / f"{role}.onnx"
        with log.timed("quantize"):
            run_quark(quark_onnx, chosen.name, source, staged, feeds, exclude, on_step, work, quiet)
        calibration_steps = len(feeds)
        del feeds

        quantized = onnx.load(str(staged))
        domains = custom_domains(node.domain for node in quantized.graph.node)
        npu = check_npu_ops(quantized, float_nodes=exclude, preset=chosen.name)
        facts = _graph_facts(quantized)
        del quantized

        log.info(f"scoring on {len(calibration.evaluation)} held-out clips, streaming both graphs")
        decoder_steps = model.step_sizes("decoder")
        decoder_role = step_role("decoder", fp32.step_frames if fp32.step_frames in decoder_steps
                                 else max(decoder_steps))
        fidelity = measure_fidelity(model, StepGraphSession(float_role, fp32_session),
                                    StepGraphSession(role, cpu_session(staged, domains, threads)),
                                    StepGraphSession(decoder_role, cpu_session(model.path_of(decoder_role),
                                                                               threads=threads)),
                                    calibration.evaluation)

        qdq_format = "QDQ" + (f" ({', '.join(domains)} custom ops)" if domains else "")
        quantization = {
            "source": float_role,
            "preset": chosen.name,
            "description": chosen.description,
            "activation_bits": chosen.activation_bits,
            "weight_bits": chosen.weight_bits,
            "power_of_two_scales": chosen.power_of_two_scales,
            "format": qdq_format,
            "opset": facts.opset,
            "conv2d": conv2d,
            "float_nodes": {"bounds_mask_arithmetic": len(mask_nodes), "state_data_movement": len(cache_nodes),
                            "why": "bounds: sample positions, an 8-bit grid would move the file's ends; state: one "
                                   "tensor packing every layer's cache, one int8 scale for all of them would crush "
                                   "the small-range caches (apucodec/calibration/step_nodes.py)"},
            "quark_version": quark_ver,
            "quark_version_tested": QUARK_VERSION_TESTED,
            "calibration": {"folder": str(calib_folder), "seed": seed, "steps_requested": steps,
                            "steps": calibration_steps, "clip_steps": CLIP_STEPS, "step_samples": step_samples,
                            "method": f"clips streamed in order through {float_role} (Stepper), each step's "
                                      "audio/state/bounds recorded",
                            **calibration.summary(),
                            "skipped_files": dict(list(calibration.files_skipped.items())[:20])},
            "fidelity": fidelity.to_dict(),
            "npu_ops": npu.to_dict(),
            "custom_ops": ({"domains": domains, "library": "amd-quark compiled custom-op library "
                            "(register_custom_ops_library; needs amd-quark and torch where the encoder runs)"}
                           if domains else None),
            "seconds": {"quantize": round(log.seconds["quantize"], 2),
                        "total": round(time.perf_counter() - started, 2)},
        }
        entry_fields = {**fp32.step_facts(), "precision": PRECISION, "preset": chosen.name, "format": qdq_format,
                        "graph": facts, "quantization": Quantization.from_dict(quantization)}
        if domains:
            entry_fields["custom_op_domains"] = domains
        target = _install(model, staged, role, entry_fields, quark_ver)
    return QuantizeResult(model, target, chosen.name, role, calibration, calibration_steps, fidelity, npu,
                          log.seconds["quantize"], time.perf_counter() - started, domains)


def _graph_facts(quantized: Any) -> GraphFacts:
    """Node and op counts (custom-domain ops named domain:op), opset and GFLOP per step of the quantized graph."""
    from apucodec.export.cost import graph_gflop

    ops = op_counts(quantized.graph.node)
    return GraphFacts(nodes=sum(ops.values()), ops=dict(sorted(ops.items())), opset=_opset(quantized),
                      gflop=graph_gflop(quantized))
