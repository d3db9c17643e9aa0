"""Compatibility names: the session and placement API, which lives in smaller modules since the split.

    apucodec.runtime.eps            EP names, CLI spellings, stage preferences, probing
    apucodec.runtime.placement      StagePlacement / PlacementReport
    apucodec.runtime.stage_plan     SessionSettings, graph choice, provider options, fallback policy
    apucodec.runtime.sessions       session creation, node placement, open_sessions
    apucodec.runtime.vitisai        Vitis AI EP options, NPU generation
    apucodec.runtime.vitisai_report the EP's operator counts (NPU vs VITIS_EP_CPU)
    apucodec.runtime.workers        stages in worker processes
"""

from __future__ import annotations

from apucodec.runtime.eps import (  # noqa: F401
    CPU,
    CUDA,
    DIRECTML,
    EP_ALIASES,
    MIGRAPHX,
    STAGE_PREFERENCES,
    VITISAI,
    WEBGPU,
    EpAvailability,
    Warn,
    parse_ep_list,
    probe_ep,
    resolve_ep_name,
    short_ep,
    warn_stderr,
)
from apucodec.runtime.placement import RVQ_LANE, PlacementReport, StagePlacement, rvq_placement  # noqa: F401
from apucodec.runtime.sessions import (  # noqa: F401
    StageSession,
    needs_profiler,
    open_sessions,
    open_stage_session,
    session_options,
)
from apucodec.runtime.stage_plan import (  # noqa: F401
    ENCODER_GRAPHS,
    SessionSettings,
    choose_encoder_graph,
    stage_ep_options,
)
