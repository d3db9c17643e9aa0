"""What a stage would try, in order: (EP, graph, provider options) candidates, and the session settings behind them.

Shared by in-process sessions (apucodec.runtime.sessions) and stage workers (apucodec.runtime.workers), so a stage
chooses its graph and options the same way whichever process runs it.

Each stage may have, at its step size, an FP32 graph and INT8 ones. encoder.s{S}.npu-int8 is made for the NPU, so
it runs where the encoder runs on the Vitis AI EP. {stage}.s{S}.cpu-int8 (`apucodec quantize --target cpu`) is made
for ONNX Runtime's CPU EP: uint8 activations, which x86 runs as integer kernels (u8s8 GEMM, VNNI where present);
the NPU graph's int8 activations are float Conv plus Q/DQ on a CPU, slower and less accurate, so the CPU never
runs it unless forced. `encoder_graph="fp32"|"int8"` forces either encoder graph; "bf16" is the FP32 graph, which
the Vitis AI EP compiles to BF16 with a vaiml config file (and which runs as FP32 anywhere else).
`decoder_graph="fp32"` keeps the decoder off its CPU INT8 graph (--precision fp32 sets both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apucodec.contract.manifest import FileEntry
from apucodec.contract.steps import WHOLE_SEQUENCE, step_role
from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir
from apucodec.runtime.eps import CPU, STAGE_PREFERENCES, VITISAI, resolve_ep_name, same_ep, short_ep
from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS
from apucodec.runtime.vitisai import DEFAULT_OPTIMIZE_LEVEL, NpuGeneration, detect_npu, vitisai_options

ENCODER_GRAPHS = ("auto", "fp32", "int8", "bf16")
DECODER_GRAPHS = ("auto", "fp32")
CPU_INT8_REASON = "CPU INT8 graph (uint8 QDQ, VNNI integer kernels) on the CPU EP"
DEFAULT_STEP_TIMEOUT_S = 120.0


@dataclass
class SessionSettings:
    """What the caller decides about sessions: EP order per stage, strictness, threads, EP options, workers."""

    encoder_eps: Sequence[str] = STAGE_PREFERENCES["encoder"]
    decoder_eps: Sequence[str] = STAGE_PREFERENCES["decoder"]
    encoder_graph: str = "auto"
    decoder_graph: str = "auto"   # "fp32": never the CPU INT8 decoder graph
    strict: bool = False
    threads: int = 0  # intra-op threads per session; 0 = onnxruntime's default
    # Let idle intra-op threads busy-wait for the next operator. Off by default: the encoder and decoder sessions
    # and the RVQ lane run at the same time, and a spinning pool takes the cores the other stages are waiting for
    # (apucodec bench, default model on 2 cores: pipelined RTF ~0.99 spinning vs ~0.83 not).
    spin: bool = False
    ep_options: dict[str, dict[str, str]] = field(default_factory=dict)  # EP name -> options (CLI, over manifest)
    # stage -> Python interpreter for a worker process ("self": this interpreter); absent: in this process
    workers: dict[str, str] = field(default_factory=dict)
    worker_timeout: float = DEFAULT_STEP_TIMEOUT_S  # seconds a worker may take for one step (and 10x to open)
    bf16_optimize_level: int = DEFAULT_OPTIMIZE_LEVEL
    ep_context: dict[str, str] = field(default_factory=dict)  # session config entries (ep.context_*)
    # Frames per step of the step graphs to open (None: each stage's largest, its offline step; a pooled-norm
    # model's whole-sequence graph where it has one, WHOLE_SEQUENCE).
    step_frames: int | None = None
    # Seconds of audio one whole-sequence graph call may take (None: from this machine's available memory).
    whole_max_seconds: float | None = None
    # Steps of an INT8 graph quieter than this (dBFS) run on the FP32 graph (runtime/int8_floor.py); -inf: never.
    int8_floor_dbfs: float = DEFAULT_FLOOR_DBFS

    def order(self, stage: str) -> list[str]:
        eps = self.encoder_eps if stage == "encoder" else self.decoder_eps
        return list(dict.fromkeys(resolve_ep_name(ep) for ep in eps))

    def explicit(self, stage: str) -> bool:
        """Did the caller choose this stage's EP order (so a fallback from it is news worth a warning)?"""
        return tuple(self.order(stage)) != STAGE_PREFERENCES.get(stage, ())


@dataclass
class Candidate:
    """One EP a stage may run on, with the graph it would load there and the options it would pass.

    `role` is the file's manifest role; `record` the manifest entry of the step graph it runs (the same entry, or
    for a precompiled EP-context graph, the entry of the step graph it was compiled from: its step size, state and
    precision). The session opened from a candidate carries the record, so nothing downstream looks a role up by
    file name again."""

    ep: str
    role: str
    path: Path
    graph_reason: str
    options: dict[str, str]
    notes: list[str] = field(default_factory=list)
    record: FileEntry | None = None


def step_frames_for(model: ModelDir, stage: str, settings: SessionSettings) -> int:
    """The step size whose graphs `stage` opens: the caller's, else the offline one: a pooled-norm model's
    whole-sequence graph (exact, apucodec/runtime/segmented_stages.py), or the model's largest step."""
    sizes = model.step_sizes(stage)
    whole = model.has(step_role(stage, WHOLE_SEQUENCE))
    if whole and settings.step_frames in (None, WHOLE_SEQUENCE):
        return WHOLE_SEQUENCE
    step = max(sizes) if settings.step_frames is None else settings.step_frames
    if step not in sizes:
        raise ApucodecError(f"{model.path}: no {stage} step graph of {step} frames (this model has "
                            f"{', '.join(map(str, sizes))}; re-export with --step-frames)")
    return step


def choose_encoder_graph(model: ModelDir, ep: str, mode: str, step_frames: int) -> tuple[str, str]:
    """(role, reason): the NPU INT8 step graph on the NPU, the CPU INT8 one on the CPU (when the model directory has
    them), FP32 otherwise, unless `mode` forces one."""
    if mode not in ENCODER_GRAPHS:
        raise ApucodecError(f"--encoder must be one of {', '.join(ENCODER_GRAPHS)}, not {mode!r}")
    fp32, int8 = step_role("encoder", step_frames), step_role("encoder", step_frames, "npu-int8")
    if mode == "int8":
        if not model.has(int8):
            raise ApucodecError(f"{model.path}: --encoder int8 asked for, but the model directory has no INT8 "
                                f"encoder at the {step_frames}-frame step (run 'apucodec quantize-encoder')")
        return int8, "forced by --encoder int8"
    if mode == "fp32":
        return fp32, "forced by --encoder fp32"
    if mode == "bf16":
        return fp32, ("FP32 graph, compiled to BF16 by the Vitis AI EP" if ep == VITISAI
                      else f"bf16 applies on the NPU only: FP32 on {short_ep(ep)}")
    if ep == VITISAI:
        if model.has(int8):
            return int8, "INT8 graph for the NPU"
        return fp32, "no INT8 encoder in the model directory (run 'apucodec quantize-encoder')"
    if ep == CPU:
        cpu_int8 = step_role("encoder", step_frames, "cpu-int8")
        if model.has(cpu_int8):
            return cpu_int8, CPU_INT8_REASON
        return fp32, ("FP32 on the CPU: the INT8 graph is for the NPU" if model.has(int8) else
                      "FP32 on the CPU: no CPU INT8 graph (run 'apucodec quantize --target cpu')")
    return fp32, f"FP32 graph on {short_ep(ep)}"


def choose_decoder_graph(model: ModelDir, ep: str, mode: str, step_frames: int) -> tuple[str, str]:
    """(role, reason): the CPU INT8 step graph on the CPU EP when the model directory has it, else FP32."""
    if mode not in DECODER_GRAPHS:
        raise ApucodecError(f"decoder graph must be one of {', '.join(DECODER_GRAPHS)}, not {mode!r}")
    fp32, cpu_int8 = step_role("decoder", step_frames), step_role("decoder", step_frames, "cpu-int8")
    if mode == "fp32":
        return fp32, "forced by --precision fp32"
    if ep == CPU and model.has(cpu_int8):
        return cpu_int8, CPU_INT8_REASON
    return fp32, ""


def configured_options(model: ModelDir, ep: str, settings: SessionSettings) -> dict[str, str]:
    """The manifest's `providers` section for `ep`, overridden by the caller's; relative cache_dir -> model dir."""
    section = model.manifest.providers or {}
    options: dict[str, str] = {}
    for key, value in section.items():
        if isinstance(value, dict) and same_ep(key, ep):
            options.update({str(k): str(v) for k, v in value.items()})
    for key, value in settings.ep_options.items():
        if same_ep(key, ep):
            options.update({str(k): str(v) for k, v in value.items()})
    if ep == VITISAI and "cache_dir" in options and not Path(options["cache_dir"]).is_absolute():
        # relative to the model directory, so a model directory can be moved with its compiled cache
        options["cache_dir"] = str((model.path / options["cache_dir"]).resolve())
    return options


def stage_ep_options(model: ModelDir, ep: str, settings: SessionSettings, role: str,
                     npu: NpuGeneration | None = None) -> dict[str, str]:
    """The exact provider options a session of `role`'s graph on `ep` gets."""
    return _options_and_notes(model, ep, settings, role, npu)[0]


def _options_and_notes(model: ModelDir, ep: str, settings: SessionSettings, role: str,
                       npu: NpuGeneration | None) -> tuple[dict[str, str], list[str]]:
    options = configured_options(model, ep, settings)
    if ep != VITISAI:
        return options, []
    entry = model.files.get(role)
    sha = model.content_sha256(role) if entry else "0" * 16  # the weights files it reads included
    # an FP32 step graph (not EP-context)
    fp32_graph = entry is not None and entry.is_step_graph and entry.graph_precision == "fp32"
    return vitisai_options(options, role, sha, fp32_graph=fp32_graph, npu=npu,
                           optimize_level=settings.bf16_optimize_level)


def stage_candidates(model: ModelDir, stage: str, settings: SessionSettings) -> tuple[str, list[Candidate]]:
    """(requested EP, candidates in order): the CPU is appended as a last resort unless --strict."""
    order = settings.order(stage)
    if not order:
        raise ApucodecError(f"{stage}: no execution provider to try")
    requested = order[0]
    eps = [requested] if settings.strict else (order if CPU in order else [*order, CPU])
    step = step_frames_for(model, stage, settings)
    if step == WHOLE_SEQUENCE and len(eps) > 1:  # a dynamic time axis: the NPU compiles static shapes only
        eps = [ep for ep in eps if ep != VITISAI]
    npu = detect_npu() if VITISAI in eps else None
    candidates = []
    for ep in eps:
        role, reason = choose_encoder_graph(model, ep, settings.encoder_graph, step) if stage == "encoder" else \
            choose_decoder_graph(model, ep, settings.decoder_graph, step)
        model.path_of(role)  # a missing file says so here, naming the model directory
        record = model.files[role]
        if ep == VITISAI and model.has(f"{role}_ctx"):
            # a precompiled EP-context graph made from this one on an NPU machine: loads without compiling
            role, reason = f"{role}_ctx", f"precompiled EP-context graph of {record.name}"
        options, notes = _options_and_notes(model, ep, settings, role, npu)
        candidates.append(Candidate(ep, role, model.path_of(role), reason, options, notes, record))
    return requested, candidates


def failure_text(failures: list[tuple[str, str]]) -> str:
    """'WebGpu: why; MIGraphX, CUDA: not in this build' — EPs with the same reason grouped."""
    grouped: dict[str, list[str]] = {}
    for ep, reason in failures:
        grouped.setdefault(reason, []).append(short_ep(ep))
    return "; ".join(f"{', '.join(eps)}: {reason}" for reason, eps in grouped.items())


def fallback_warning(stage: str, requested: str, ran_on: str, failures: list[tuple[str, str]],
                     settings: SessionSettings, hardware_failed: bool) -> str | None:
    """The one warning line for a fallback, or None when it is no news.

    On an ordinary PC without an NPU or GPU every default run falls back; saying so on every command is noise (the
    summary line already says where each stage ran). A fallback is worth a warning when the user chose the EP
    order, when an EP was there (built in, device present) and still failed to take the stage, or when the
    processor itself is in the machine (runtime/processors.py) but its EP is not usable.
    """
    if ran_on == requested:
        return None
    from apucodec.runtime.processors import present

    there = present(requested)  # the processor is in this machine: its EP's absence is a surprise
    if not (settings.explicit(stage) or hardware_failed or there):
        return None
    first = failures[0][1] if failures and failures[0][0] == requested else "unavailable"
    others = [short_ep(e) for e, _ in failures if e != requested]
    also = f"; {', '.join(others)} also unavailable (see --report)" if others else ""
    hint = f"; this machine has {there}: see docs/npu-guide.md" if there else ""
    return f"{stage}: running on {short_ep(ran_on)}, not {short_ep(requested)} ({first}{also}{hint})"
