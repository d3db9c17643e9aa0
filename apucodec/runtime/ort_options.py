"""ONNX Runtime session and run options for every session the project opens: one place, so what export parity,
quantization fidelity and the doctor measure is what `apucodec run` computes (threads, spinning, arena, logging).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from apucodec.runtime.stage_plan import SessionSettings


def _ort():
    import onnxruntime as ort

    return ort


def session_options(settings: SessionSettings, strict_ep: bool = False, profile_dir: str | None = None,
                    severity: int | None = None, compiling: bool = True, arena: bool = False) -> Any:
    """Session options for one stage; `compiling`: the EP compiles the graph (EP-context entries apply).

    The one place ONNX Runtime session options are made: export parity and quantization fidelity open their CPU
    sessions with these too (`session_options(SessionSettings(threads=n))`), so what they measure is what
    `apucodec run` computes, with the same threads, no spinning and ORT's own warnings kept off stderr.
    """
    ort = _ort()
    so = ort.SessionOptions()
    # placement is reported by us; ORT's own warnings would repeat it on stderr
    so.log_severity_level = 3 if severity is None else severity
    if settings.threads:
        so.intra_op_num_threads = settings.threads
        so.inter_op_num_threads = 1
    if not settings.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No CPU memory arena for step graphs: their intermediates (caches joined to each step's input, masks) come in
    # many sizes, and the arena keeps the high-water mark of all of them (default encoder, 64-frame step: 321 MB
    # peak with it, 231 MB without, at the same speed within noise). A whole-sequence graph (`arena`) is the
    # opposite: tensors of millions of values, each a fresh mmap and page faults without an arena. It shares the
    # process's one arena (share_whole_sequence_arena), shrunk after every call (whole_sequence_run_options).
    so.enable_cpu_mem_arena = arena
    if arena:
        share_whole_sequence_arena()
        so.add_session_config_entry("session.use_env_allocators", "1")
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if strict_ep:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in (settings.ep_context if compiling else {}).items():
        so.add_session_config_entry(key, value)
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "placement")
    return so


_SHARED_ARENA: list[bool] = []


def share_whole_sequence_arena() -> None:
    """Register, once per process, the CPU arena that whole-sequence sessions share: it grows by what is asked
    (not to the next power of two) and, being one, holds the larger of the encoder's and the decoder's needs rather
    than their sum. Measured on the 32.4M seed model, FP32 whole graphs, encoder then decoder on 60 s of audio
    (apucodec/runtime/segmented_stages.py budgets with these): no arena 353 s and 2716 MB above the opened sessions;
    one arena per session, shrunk after each call, 5843 MB; this shared arena, shrunk after each call, 192 s and
    4332 MB. Faster by 1.8x for 1.6x the memory: the per-run limit, which comes from the measured cost per second,
    cuts segments shorter instead."""
    if _SHARED_ARENA:
        return
    ort = _ort()
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    with contextlib.suppress(Exception):  # registered already (another caller in this process): share that one
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))
    _SHARED_ARENA.append(True)


def whole_sequence_run_options(whole: bool) -> Any:
    """Run options for a whole-sequence graph's calls (None for a step graph): the shared arena
    (share_whole_sequence_arena) is shrunk at the end of every call, so what one call needed is not held while the
    other stage runs, nor between files."""
    if not whole:
        return None
    options = _ort().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def needs_profiler() -> bool:
    return not hasattr(_ort().InferenceSession, "get_provider_graph_assignment_info")
