"""`apucodec eval`: how good a model sounds on a folder of clips, through the deployed runtime, next to Opus.

Per clip and system: SI-SDR (dB, higher is better: waveform fidelity, gain-independent), the multi-scale log-mel
distance (lower is better: closer to what the ear hears, the quantity training minimises), ViSQOL MOS-LQO in audio
mode when `visqol-python` is installed (both signals at 48 kHz, the rate its audio model expects), the frame-rate
comb of the output and of the input (apucodec/tools/comb.py: lines at multiples of the frame rate, the decoder's
characteristic buzz; music can have real lines there, hence the input's own), and the bitrate.
The reference is the clip itself at 44.1 kHz mono, the codec's input.

A system is a (model, codebooks, variant) or Opus at a bitrate. The default variant is what `apucodec run` does on
this machine (its processors, its INT8 graphs and INT8 floor); `variants="all"` measures every graph the model has
on the CPU EP side by side instead: FP32, the NPU INT8 encoder and the CPU INT8 graphs, each with the INT8 floor
off ("all steps") and at its default, which is what benchmarks/quality.py reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.dsp.metrics import mel_distance, si_sdr
from apucodec.errors import ApucodecError
from apucodec.io.audio_read import list_audio_files, read_audio
from apucodec.io.resample import resample
from apucodec.model.directory import ModelDir, load_model_dir
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.tools.comb import frame_rate_comb
from apucodec.tools.eval_opus import opus_roundtrip

OPUS_RATE_IN = 44100  # what Opus rows are fed and scored at; a model's rows use the model's own rate
METRICS = ("si_sdr", "mel", "visqol", "comb_db", "fs8_db", "fs4_db", "kbps")


@dataclass
class System:
    """One column of the comparison: a model run (settings, codebooks) or Opus (kbps)."""

    name: str
    model: ModelDir | None = None
    settings: SessionSettings | None = None
    codebooks: int | None = None
    opus_kbps: float | None = None


@dataclass
class EvalResult:
    clips: list[str]
    systems: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # system -> one row per clip
    visqol: bool = False
    visqol_skipped: bool = False  # not asked for (installed or not)

    def means(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, rows in self.systems.items():
            out[name] = {m: float(np.mean([r[m] for r in rows])) for m in METRICS if rows and m in rows[0]}
            out[name]["input_comb_db"] = float(np.mean([r["input_comb_db"] for r in rows]))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"clips": self.clips, "visqol": self.visqol, "mean": self.means(), "per_clip": self.systems}


def visqol_scorer() -> Callable[[np.ndarray, np.ndarray, int], float] | None:
    """(reference, degraded, their rate) -> MOS-LQO, or None when visqol-python is not installed."""
    try:
        from visqol import VisqolApi  # the visqol-python distribution (a Python port of ViSQOL v3)
    except ImportError:
        return None
    api = VisqolApi()
    api.create(mode="audio")

    def score(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
        ref48 = resample(reference, rate, 48000).astype(np.float64)
        deg48 = resample(degraded, rate, 48000).astype(np.float64)
        return float(api.measure_from_arrays(ref48, deg48, 48000).moslqo)

    return score


def graph_variants(model: ModelDir) -> dict[str, SessionSettings]:
    """Every graph the model directory has, on the CPU EP: FP32; the NPU INT8 encoder (FP32 decoder) and the CPU
    INT8 graphs, each with the INT8 floor off and at its default."""
    cpu = {"encoder_eps": ("cpu",), "decoder_eps": ("cpu",)}
    out = {"fp32": SessionSettings(**cpu, encoder_graph="fp32", decoder_graph="fp32")}
    precisions = {g.precision for g in model.step_graphs("encoder")}
    if "npu-int8" in precisions:
        npu = {**cpu, "encoder_graph": "int8", "decoder_graph": "fp32"}
        out["npu-int8 all steps"] = SessionSettings(**npu, int8_floor_dbfs=-np.inf)
        out["npu-int8 floor"] = SessionSettings(**npu, int8_floor_dbfs=DEFAULT_FLOOR_DBFS)
    if "cpu-int8" in precisions:
        out["cpu-int8 all steps"] = SessionSettings(**cpu, int8_floor_dbfs=-np.inf)
        out["cpu-int8 floor"] = SessionSettings(**cpu, int8_floor_dbfs=DEFAULT_FLOOR_DBFS)
    return out


def systems_for(model_dirs: Sequence[Path], codebooks: Sequence[int | None], opus: Sequence[float],
                variants: str = "default", settings: SessionSettings | None = None,
                only: Sequence[str] = ()) -> list[System]:
    """The systems to compare, in column order. `only`: with variants="all", FP32 plus the variants whose names
    start with one of these."""
    systems: list[System] = []
    models = [load_model_dir(d) for d in model_dirs]
    labels = [m.path.name for m in models]
    if len(set(labels)) < len(labels):
        labels = [str(m.path) for m in models]
    for model, label in zip(models, labels, strict=True):
        per_model = {"": settings or SessionSettings()} if variants == "default" else graph_variants(model)
        for variant, chosen in per_model.items():
            if only and variant != "fp32" and not any(variant.startswith(o) for o in only):
                continue
            for n in codebooks:
                if n is not None and not 1 <= n <= model.config.n_codebooks:
                    raise ApucodecError(f"--codebooks {n}: {label} has 1 to {model.config.n_codebooks} codebooks")
                parts = [label] + ([f"{n}cb"] if n is not None else []) + ([variant] if variant else [])
                systems.append(System(" ".join(parts), model, chosen, n))
    systems += [System(f"opus {kbps:g}k", opus_kbps=kbps) for kbps in opus]
    return systems


def evaluate(folder: Path, systems: Sequence[System], on_clip: Callable[[str, str], None] | None = None,
             use_visqol: bool = True) -> EvalResult:
    """Every system on every audio file under `folder`; `on_clip(system, clip)` before each (progress)."""
    files = list_audio_files(folder)
    if not files:
        raise ApucodecError(f"{folder}: no audio files")
    visqol = visqol_scorer() if use_visqol else None
    references_at: dict[int, list[np.ndarray]] = {}  # each rate's copy of the clips, read once
    input_combs = {}
    result = EvalResult([p.name for p in files], visqol=visqol is not None, visqol_skipped=not use_visqol)
    for system in systems:
        codec = None if system.model is None else CodecEngine(system.model, system.settings, warn=None)
        hop = system.model.config.hop_length if system.model is not None else 512
        rate = codec.sample_rate if codec is not None else OPUS_RATE_IN
        if rate not in references_at:
            references_at[rate] = [read_audio(path, rate)[0] for path in files]
        references = references_at[rate]
        rows = []
        for path, reference in zip(files, references, strict=True):
            if on_clip is not None:
                on_clip(system.name, path.name)
            if codec is not None:
                decoded, run = codec.run_array(reference, system.codebooks)
                kbps, notes = run.bitrate / 1000, list(run.notes)
            else:
                opus = opus_roundtrip(reference, rate, system.opus_kbps or 0.0)
                decoded, kbps, notes = opus.audio, opus.kbps, []
            if (path.name, hop, rate) not in input_combs:
                input_combs[path.name, hop, rate] = frame_rate_comb(reference, rate, hop)["comb_db"]
            row = {"clip": path.name, "si_sdr": si_sdr(reference, decoded),
                   "mel": mel_distance(reference, decoded, rate),
                   **frame_rate_comb(decoded, rate, hop), "input_comb_db": input_combs[path.name, hop, rate],
                   "kbps": kbps, "notes": notes}
            if visqol is not None:
                row["visqol"] = visqol(reference, decoded, rate)
            rows.append(row)
        result.systems[system.name] = rows
    return result
