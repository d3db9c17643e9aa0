"""`export_model`: checkpoint (or in-memory APUCodec) -> verified model directory.

Steps, each timed and logged, each with clear inputs and outputs (Olive-style):
  load        checkpoint path            -> APUCodec (eval)
  geometry    CodecConfig, chunk length  -> receptive field, WindowGeometry, GraphSpecs
  fold        APUCodec                   -> plain encoder / decoder modules (weight norm folded)
  probe       folded modules             -> empirical receptive field (must lie within the analytic one)
  export      module + GraphSpec         -> ONNX ModelProto (opset 17, static, batch 1)
  simplify    ModelProto                 -> smaller ModelProto (onnxsim; onnxslim fallback)
  check       ModelProto + GraphSpec     -> onnx.checker full check, names, shapes, opset
  write       ModelProtos, codebooks     -> encoder.onnx, decoder.onnx, codebooks.npy in a staging folder
  parity      files + APUCodec           -> SNR / max error per graph on ORT CPU (fails under 80 dB)
  stitching   files + APUCodec           -> windowed vs whole-file error, interior and edges
  manifest    everything above           -> manifest.json; the staging folder is renamed to the output
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from apucodec import __version__
from apucodec.codec.checkpoint import load_checkpoint
from apucodec.codec.config import CodecConfig
from apucodec.codec.model import APUCodec
from apucodec.errors import ApucodecError
from apucodec.export import DEFAULT_CHUNK_SECONDS, DEFAULT_OPSET, cost, graph, parity, probe, stitching
from apucodec.export.folding import fold_weight_norm
from apucodec.export.receptive_field import ReceptiveField, chunk_frames_for, receptive_field
from apucodec.export.specs import GraphSpec, graph_specs
from apucodec.export.steps import Log, StepLog
from apucodec.export.workspace import staging_folder
from apucodec.model_dir import (
    DEFAULT_DIR_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    ModelDir,
    WindowGeometry,
    file_entry,
    load_model_dir,
    model_id,
    write_json_atomic,
)

SUPPORTED_OPSETS = range(17, 21)
CODEBOOK_DTYPES = ("float32", "float16")
GROUPNORM_CAVEAT = ("this model uses GroupNorm, which pools statistics over the whole window, so windowed "
                    "(chunked) inference cannot equal whole-file inference; expect audible differences at window "
                    "boundaries. Retrain with norm='weight' for exact chunking.")


def _validate(chunk_seconds: float, opset: int, codebooks_dtype: str, context_frames: int | None) -> None:
    if not chunk_seconds > 0:
        raise ApucodecError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    if opset not in SUPPORTED_OPSETS:
        raise ApucodecError(f"--opset {opset} is not supported (use {SUPPORTED_OPSETS.start}.."
                            f"{SUPPORTED_OPSETS.stop - 1}; 17 is what the Ryzen AI NPU compiler documents)")
    if codebooks_dtype not in CODEBOOK_DTYPES:
        raise ApucodecError(f"codebooks dtype must be one of {CODEBOOK_DTYPES}, got {codebooks_dtype!r}")
    if context_frames is not None and context_frames < 0:
        raise ApucodecError(f"context frames must be >= 0, got {context_frames}")


def producers(simplifier: str) -> dict[str, str]:
    found = {"apucodec": __version__, "torch": str(torch.__version__), "onnx": onnx.__version__,
             "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if simplifier != "none":
        tool, version = simplifier.split(" ", 1)
        found[tool] = version
    return found


def export_model(source: str | Path | APUCodec, out_dir: str | Path = DEFAULT_DIR_NAME, *,
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS, context_frames: int | None = None,
                 opset: int = DEFAULT_OPSET, simplify: bool = True, force: bool = False,
                 codebooks_dtype: str = "float32", log: Log | None = print) -> ModelDir:
    """Export `source` (a checkpoint path or an APUCodec) into the model directory `out_dir` and return it.

    `chunk_seconds` sets the new audio per window (rounded to whole frames); `context_frames` defaults to the
    receptive field and may only be larger. Raises ApucodecError for every user-fixable problem, leaving no
    partial directory behind.
    """
    out = Path(out_dir)
    _validate(chunk_seconds, opset, codebooks_dtype, context_frames)
    steps = StepLog(log)
    # The staging folder is made first, so an unwritable destination fails before minutes of work.
    with staging_folder(out, force) as stage:
        _export_into(stage, source, steps, chunk_seconds=chunk_seconds, context_frames=context_frames, opset=opset,
                     simplify=simplify, codebooks_dtype=codebooks_dtype)
    result = load_model_dir(out)
    steps.info(f"wrote {result.label}")
    return result


def _export_into(stage: Path, source: str | Path | APUCodec, steps: StepLog, *, chunk_seconds: float,
                 context_frames: int | None, opset: int, simplify: bool, codebooks_dtype: str) -> None:
    """Every step of the export, writing the finished directory's content into `stage`."""
    model, source_info = _step_load(source, steps)
    cfg = model.config
    field, geometry, specs = _step_geometry(cfg, chunk_seconds, context_frames, steps)
    modules, folded_count = _step_fold(model, specs, steps)
    probes = _step_probe(modules, field, cfg, steps)
    protos, graph_info, exporter, simplifier = _step_graphs(modules, specs, opset, simplify, steps)
    paths = _step_write(stage, protos, specs, model, codebooks_dtype, steps)
    parities = _step_parity(model, specs, paths, steps)
    stitched, caveats = _step_stitching(model, specs, paths, geometry, field, steps)

    files = {role: file_entry(paths[role], role, **specs[role].io_dict(), graph=graph_info[role]) for role in specs}
    files["codebooks"] = file_entry(paths["codebooks"], "codebooks", shape=list(model.quantizer.codebooks.shape),
                                    dtype=codebooks_dtype)
    files = {role: files[role] for role in ("encoder", "codebooks", "decoder")}
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_id": model_id(files),
        "codec": cfg.to_dict(),
        "window": {**geometry.to_dict(), "chunk_seconds": geometry.chunk_samples / cfg.sample_rate,
                   "receptive_field": {**field.to_dict(),
                                       "probe": {role: r.to_dict() for role, r in probes.items()}}},
        "files": files,
        "export": {
            "source": source_info,
            "exporter": exporter,
            "opset": opset,
            "weight_norm_folded": folded_count,
            "simplifier": simplifier,
            "parity": {role: p.to_dict() for role, p in parities.items()},
            "stitching": {role: s.to_dict() for role, s in stitched.items()},
            "caveats": caveats,
            "seconds": steps.seconds,
        },
        "producers": producers(simplifier),
    }
    write_json_atomic(stage / MANIFEST_NAME, manifest)


def _step_load(source: str | Path | APUCodec, steps: StepLog) -> tuple[APUCodec, dict[str, Any]]:
    """checkpoint path (or model) -> APUCodec in eval mode, and where it came from."""
    with steps.step("load") as said:
        if isinstance(source, APUCodec):
            model, source_info = source, {"format": "in-memory"}
        else:
            loaded = load_checkpoint(source)
            model = loaded.model
            source_info = {"checkpoint": Path(source).name, "format": loaded.source_format, "step": loaded.step}
        model.eval()
        said.append(f"{source_info.get('checkpoint', 'in-memory model')} ({source_info['format']} format, "
                    f"{model.param_count / 1e6:.2f}M parameters, norm={model.config.norm})")
    return model, source_info


def _step_geometry(cfg: CodecConfig, chunk_seconds: float, context_frames: int | None,
                   steps: StepLog) -> tuple[ReceptiveField, WindowGeometry, dict[str, GraphSpec]]:
    """config + chunk length -> receptive field, window geometry, one GraphSpec per graph."""
    with steps.step("geometry") as said:
        field = receptive_field(cfg)
        context = field.context_frames if context_frames is None else context_frames
        if context < field.context_frames:
            raise ApucodecError(f"context of {context} frames does not cover the receptive field "
                                f"({field.context_frames} frames)")
        geometry = WindowGeometry(hop=cfg.hop_length, window_frames=chunk_frames_for(cfg, chunk_seconds) + 2 * context,
                                  context_frames=context)
        specs = {spec.role: spec for spec in graph_specs(cfg, geometry)}
        said.append(f"window {geometry.window_frames} frames = {geometry.context_frames} context + "
                    f"{geometry.chunk_frames} chunk + {geometry.context_frames} context "
                    f"({geometry.window_samples} samples); receptive field ±{field.encoder.left} samples "
                    f"(encoder), ±{field.decoder.left} frames (decoder)")
    return field, geometry, specs


def _step_fold(model: APUCodec, specs: dict[str, GraphSpec], steps: StepLog) -> tuple[dict[str, Any], int]:
    """APUCodec -> plain encoder and decoder modules (weight norm folded)."""
    with steps.step("fold") as said:
        modules = {}
        folded_count = 0
        for role, spec in specs.items():
            modules[role], n = fold_weight_norm(getattr(model, spec.module), model.config)
            folded_count += n
        said.append(f"{folded_count} weight-normalised tensors folded into plain convolutions")
    return modules, folded_count


def _step_probe(modules: dict[str, Any], field: ReceptiveField, cfg: CodecConfig,
                steps: StepLog) -> dict[str, probe.ProbeResult]:
    """plain modules -> measured receptive fields; an output outside the computed one is a fatal bug."""
    with steps.step("probe receptive field") as said:
        probes = {"encoder": probe.probe_encoder(modules["encoder"], field.encoder, cfg.hop_length, cfg.sample_rate),
                  "decoder": probe.probe_decoder(modules["decoder"], field.decoder, cfg.latent_dim, cfg.hop_length)}
        said.append(", ".join(f"{role} gradient {r.gradient} / perturbation {r.perturbation} vs computed "
                              f"{r.analytic}" + (" (global: pooled statistics)" if r.global_reach else "")
                              for role, r in probes.items()))
    for role, result in probes.items():
        if not field.pooled and not result.within:
            raise ApucodecError(f"{role}: outputs move outside the computed receptive field (gradient "
                                f"{result.gradient}, perturbation {result.perturbation}, computed "
                                f"{result.analytic}); the window context would not cover it")
    return probes


def _step_graphs(modules: dict[str, Any], specs: dict[str, GraphSpec], opset: int, simplify: bool,
                 steps: StepLog) -> tuple[dict[str, onnx.ModelProto], dict[str, dict[str, Any]], str, str]:
    """plain modules -> exported, simplified, checked ModelProtos, with node counts before/after simplification."""
    protos: dict[str, onnx.ModelProto] = {}
    graph_info: dict[str, dict[str, Any]] = {}
    exporter, simplifier = "", "none"
    for role, spec in specs.items():
        with steps.step(f"export {spec.filename}") as said:
            proto, exporter = graph.to_onnx(modules[role], spec, opset)
            before = graph.op_counts(proto)
            said.append(f"{before['nodes']} nodes, opset {opset}, {exporter}")
        after = before
        if simplify:
            with steps.step(f"simplify {spec.filename}") as said:
                proto, simplifier = graph.simplify(proto)
                after = graph.op_counts(proto)
                said.append(f"{before['nodes']} -> {after['nodes']} nodes ({simplifier})")
        with steps.step(f"check {spec.filename}") as said:
            graph.check(proto, spec, opset)
            said.append("onnx.checker full check passed; static batch-1 shapes "
                        f"{list(spec.input.shape)} -> {list(spec.output.shape)}")
        protos[role] = proto
        graph_info[role] = {"nodes_exported": before["nodes"], "nodes": after["nodes"], "ops": after["ops"],
                            "opset": opset, "gflop": cost.graph_gflop(proto)}
    return protos, graph_info, exporter, simplifier


def _step_write(stage: Path, protos: dict[str, onnx.ModelProto], specs: dict[str, GraphSpec], model: APUCodec,
                codebooks_dtype: str, steps: StepLog) -> dict[str, Path]:
    """ModelProtos + codebooks -> files in the staging folder."""
    with steps.step("write") as said:
        paths = {role: stage / spec.filename for role, spec in specs.items()}
        for role, proto in protos.items():
            onnx.save(proto, str(paths[role]))
        paths["codebooks"] = stage / "codebooks.npy"
        np.save(paths["codebooks"], model.quantizer.codebooks.detach().cpu().numpy().astype(codebooks_dtype))
        said.append(", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in paths.values()))
    return paths


def _step_parity(model: APUCodec, specs: dict[str, GraphSpec], paths: dict[str, Path],
                 steps: StepLog) -> dict[str, parity.GraphParity]:
    """files -> ORT-vs-PyTorch error per graph; under MIN_SNR_DB refuses the export."""
    with steps.step("parity") as said:
        parities = parity.check_parity(model, specs, paths)
        said.append(", ".join(f"{role} SNR {p.snr_db:.1f} dB (max abs err {p.max_abs_error:.2e})"
                              for role, p in parities.items()))
    for role, p in parities.items():
        if p.snr_db < parity.MIN_SNR_DB:
            raise ApucodecError(f"{specs[role].filename}: ONNX output differs from PyTorch (SNR {p.snr_db:.1f} dB "
                                f"< {parity.MIN_SNR_DB:.0f} dB); export refused")
    return parities


def _step_stitching(model: APUCodec, specs: dict[str, GraphSpec], paths: dict[str, Path], geometry: WindowGeometry,
                    field: ReceptiveField, steps: StepLog) -> tuple[dict[str, stitching.StitchResult], list[str]]:
    """files -> windowed-vs-whole-file error per graph; fatal for chunk-safe models, a caveat for GroupNorm."""
    with steps.step("stitching") as said:
        stitched = stitching.check_stitching(model, specs, paths, geometry, field)
        said.append(", ".join(f"{role} interior {s.interior_rel_error:.1e} / edge {s.edge_rel_error:.1e} relative"
                              for role, s in stitched.items()))
    if field.pooled:
        steps.info(f"caveat: {GROUPNORM_CAVEAT}")
        return stitched, [GROUPNORM_CAVEAT]
    for role, s in stitched.items():
        if not s.passed:
            raise ApucodecError(f"{specs[role].filename}: windowed output differs from whole-file output by "
                                f"{s.interior_rel_error:.1e} relative in the interior (tolerance "
                                f"{stitching.TOLERANCE:.0e}); the window context is too small")
    return stitched, []
