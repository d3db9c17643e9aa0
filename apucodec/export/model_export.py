"""`export_model`: checkpoint (or in-memory APUCodec) -> verified model directory.

Steps, each timed and logged, each with clear inputs and outputs (Olive-style):
  load        checkpoint path            -> APUCodec (eval)
  fold        APUCodec                   -> plain encoder / decoder modules (weight norm folded)
  steps       folded modules, step sizes -> step networks (caches, delays, bounds masks), GraphSpecs
  export      step network + GraphSpec   -> ONNX ModelProto (opset 17, static, batch 1)
  simplify    ModelProto                 -> smaller ModelProto (onnxsim; onnxslim fallback)
  check       ModelProto + GraphSpec     -> onnx.checker full check, names, shapes, opset
  write       ModelProtos, codebooks     -> encoder.sN.onnx, decoder.sN.onnx, codebooks.npy in a staging folder;
                                            each stage's weights once, in encoder.fp32.weights / decoder.fp32.weights
                                            (ONNX external data shared by its step graphs: export/shared_weights.py)
  parity      files + APUCodec           -> streamed step by step vs whole-file PyTorch, edges included, per
                                            graph on ORT CPU (fails under 80 dB)
  manifest    everything above           -> manifest.json; the staging folder is renamed to the output
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from apucodec.codec.checkpoint import load_checkpoint
from apucodec.codec.dac.model import DacModel
from apucodec.codec.model import APUCodec
from apucodec.contract.config import CodecConfig
from apucodec.contract.families import codec_from_config
from apucodec.contract.manifest import (
    MANIFEST_NAME,
    WEIGHTS_FORMAT,
    ExportRecord,
    FileEntry,
    Manifest,
    Streaming,
    write_manifest,
)
from apucodec.contract.steps import STAGES
from apucodec.errors import ApucodecError
from apucodec.export import parity
from apucodec.export.dac_steps import build_dac_steps, count_weight_norms
from apucodec.export.folding import fold_weight_norm
from apucodec.export.shared_weights import share_weights as move_weights
from apucodec.export.specs import DEFAULT_OPSET, DEFAULT_STEP_FRAMES, GraphSpec, step_spec
from apucodec.export.step_graphs import producers, step_file_entries, step_graphs
from apucodec.export.streaming import StepNetwork, build_steps
from apucodec.model.directory import DEFAULT_DIR_NAME, ModelDir, file_entry, load_model_dir, model_id
from apucodec.model.passes import Log, StepLog, new_model_dir
from apucodec.model.rvq_projections import FILENAME as PROJECTIONS_FILE
from apucodec.model.rvq_projections import ROLE as PROJECTIONS
from apucodec.model.rvq_projections import save_projections

SUPPORTED_OPSETS = range(17, 21)
CODEBOOK_DTYPES = ("float32", "float16")
MAX_STEP_FRAMES = 4096


def _validate(step_frames: tuple[int, ...], opset: int, codebooks_dtype: str) -> None:
    if not step_frames or any(not 1 <= s <= MAX_STEP_FRAMES for s in step_frames):
        raise ApucodecError(f"--step-frames must list step sizes in 1..{MAX_STEP_FRAMES} frames, got "
                            f"{','.join(map(str, step_frames)) or 'none'}")
    if opset not in SUPPORTED_OPSETS:
        raise ApucodecError(f"--opset {opset} is not supported (use {SUPPORTED_OPSETS.start}.."
                            f"{SUPPORTED_OPSETS.stop - 1}; 17 is what the Ryzen AI NPU compiler documents)")
    if codebooks_dtype not in CODEBOOK_DTYPES:
        raise ApucodecError(f"codebooks dtype must be one of {CODEBOOK_DTYPES}, got {codebooks_dtype!r}")


def export_model(source: str | Path | APUCodec, out_dir: str | Path = DEFAULT_DIR_NAME, *,
                 step_frames: tuple[int, ...] = DEFAULT_STEP_FRAMES, opset: int = DEFAULT_OPSET,
                 simplify: bool = True, force: bool = False, codebooks_dtype: str = "float32",
                 log: Log | None = print, share_weights: bool = True, family: str | None = None,
                 reference_audio: str | Path | None = None) -> ModelDir:
    """Export `source` (a checkpoint path or an APUCodec) into the model directory `out_dir` and return it.

    One encoder and one decoder step graph per entry of `step_frames` (frames per step; the defaults are a live
    step of 4 frames, 46 ms, and an offline one of 64). `share_weights`: each stage's step graphs read their
    weights from one shared file (the default) rather than each carrying a copy. `family` overrides recognising
    the checkpoint's codec family from its keys. A pooled-norm (GroupNorm) model also gets exact whole-sequence
    graphs for offline work, and its step graphs' approximation is measured on `reference_audio` (recordings;
    default: synthetic signals). Raises ApucodecError for every user-fixable problem, leaving no
    partial directory behind.
    """
    out = Path(out_dir)
    step_frames = tuple(sorted(set(int(s) for s in step_frames)))
    _validate(step_frames, opset, codebooks_dtype)
    steps = StepLog(log, "export")
    # The staging folder is made first, so an unwritable destination fails before minutes of work.
    with new_model_dir(out, force) as stage:
        encodec = _encodec_source(source, family)
        if encodec is not None:
            from apucodec.export.encodec_export import export_encodec_into

            export_encodec_into(stage, *encodec, steps, step_frames=step_frames, opset=opset, simplify=simplify,
                                codebooks_dtype=codebooks_dtype)
        else:
            _export_into(stage, source, steps, step_frames=step_frames, opset=opset, simplify=simplify,
                         codebooks_dtype=codebooks_dtype, share_weights=share_weights,
                         reference_audio=Path(reference_audio) if reference_audio is not None else None)
    result = load_model_dir(out)
    steps.info(f"wrote {result.label}")
    return result


def _encodec_source(source: Any, family: str | None) -> tuple[Any, dict[str, Any]] | None:
    """(EncodecNet, source info) when `source` is an EnCodec model or checkpoint (or `family` says so), else None."""
    from apucodec.codec.checkpoint import checkpoint_family, load_encodec_checkpoint
    from apucodec.codec.encodec.model import EncodecNet

    if isinstance(source, EncodecNet):
        return source, {"format": "in-memory", "family": "encodec"}
    if isinstance(source, APUCodec) or checkpoint_family(source, family) != "encodec":
        return None
    return load_encodec_checkpoint(source), {"checkpoint": Path(source).name, "format": "encodec", "step": 0}


def _export_into(stage: Path, source: str | Path | APUCodec, steps: StepLog, *, step_frames: tuple[int, ...],
                 opset: int, simplify: bool, codebooks_dtype: str, share_weights: bool = True,
                 reference_audio: Path | None = None) -> None:
    """Every step of the export, writing the finished directory's content into `stage`."""
    model, source_info = _step_load(source, steps)
    cfg = model.config
    modules, folded_count = _step_fold(model, steps)
    networks, specs = _step_networks(modules, cfg, step_frames, steps)
    protos, graph_info, exporter, simplifier = step_graphs(networks, specs, opset, simplify, steps)
    paths, external = _step_write(stage, protos, specs, model, codebooks_dtype, steps, share_weights)
    parities, caveats = _step_parity(model, networks, specs, paths, steps)
    whole_files: dict[str, FileEntry] = {}
    approximate = None
    if getattr(cfg, "norm", None) == "group":  # GroupNorm: exact whole-sequence graphs offline
        from apucodec.export.pooled_export import export_offline

        whole_files, parities, approximate = export_offline(model, modules, networks, paths, stage, opset, simplify,
                                                            steps, reference_audio)

    files = step_file_entries(specs, networks, paths, graph_info, external)
    files.update(whole_files)
    files["codebooks"] = file_entry(paths["codebooks"], "codebooks", shape=list(model.quantizer.codebooks.shape),
                                    dtype=codebooks_dtype)
    for name in sorted({n for names in external.values() for n in names}):
        files[name] = file_entry(paths[name], name, precision="fp32", format=WEIGHTS_FORMAT)
    if PROJECTIONS in paths:  # DAC: in_proj/out_proj per codebook, beside the codebooks
        files[PROJECTIONS] = file_entry(paths[PROJECTIONS], PROJECTIONS, dtype="float32")
    stage_nets = {s: networks[next(r for r in specs if specs[r].stage == s)] for s in STAGES}
    streaming = Streaming.compute(cfg.hop_length, cfg.sample_rate,
                                  {s: (net.delay_samples, net.state_size) for s, net in stage_nets.items()},
                                  list(step_frames))
    manifest = Manifest(
        model_id=model_id(files), codec=codec_from_config(cfg), streaming=streaming, files=files,
        export=ExportRecord(source=source_info, exporter=exporter, opset=opset, weight_norm_folded=folded_count,
                            simplifier=simplifier, parity={role: p if isinstance(p, dict) else p.to_dict()
                                                           for role, p in parities.items()},
                            caveats=caveats, seconds=steps.seconds, approximate=approximate),
        producers=producers(simplifier))
    write_manifest(stage / MANIFEST_NAME, manifest)


def _step_load(source: str | Path | APUCodec, steps: StepLog) -> tuple[APUCodec, dict[str, Any]]:
    """checkpoint path (or model) -> APUCodec in eval mode, and where it came from."""
    with steps.step("load") as said:
        if isinstance(source, (APUCodec, DacModel)):
            model, source_info = source, {"format": "in-memory"}
        else:
            loaded = load_checkpoint(source)
            model = loaded.model
            source_info = {"checkpoint": Path(source).name, "format": loaded.source_format, "step": loaded.step}
        model.eval()
        said.append(f"{source_info.get('checkpoint', 'in-memory model')} ({source_info['format']} format, "
                    f"{model.param_count / 1e6:.2f}M parameters, "
                    + (f"norm={model.config.norm})" if isinstance(model, APUCodec) else "DAC family)"))
    return model, source_info


def _step_fold(model: APUCodec, steps: StepLog) -> tuple[dict[str, Any], int]:
    """APUCodec -> plain encoder and decoder modules (weight norm folded)."""
    if isinstance(model, DacModel):  # DAC: its step builder folds each conv itself (export/dac_steps.py)
        with steps.step("fold") as said:
            said.append(f"{count_weight_norms(model)} weight-normalised convolutions, folded as the steps are built")
        return {stage: model for stage in STAGES}, count_weight_norms(model)
    with steps.step("fold") as said:
        modules = {}
        folded_count = 0
        for stage in STAGES:
            modules[stage], n = fold_weight_norm(getattr(model, stage), model.config)
            folded_count += n
        said.append(f"{folded_count} weight-normalised tensors folded into plain convolutions")
    return modules, folded_count


def _step_networks(modules: dict[str, Any], cfg: CodecConfig, step_frames: tuple[int, ...],
                   steps: StepLog) -> tuple[dict[str, StepNetwork], dict[str, GraphSpec]]:
    """plain modules -> one step network and GraphSpec per stage and step size."""
    networks: dict[str, StepNetwork] = {}
    specs: dict[str, GraphSpec] = {}
    with steps.step("steps") as said:
        for stage in STAGES:
            for s in step_frames:
                if isinstance(modules[stage], DacModel):
                    net = build_dac_steps(modules[stage], stage, s)
                else:
                    net = build_steps(modules[stage], s, cfg.hop_length)
                spec = step_spec(cfg, stage, s, net.state_size)
                networks[spec.role], specs[spec.role] = net, spec
            said.append(f"{stage}: delay {net.delay_samples} samples ({net.delay_samples / cfg.hop_length:.2f} "
                        f"frames), state {net.state_size} values")
    return networks, specs


def _step_write(stage: Path, protos: dict[str, onnx.ModelProto], specs: dict[str, GraphSpec], model: APUCodec,
                codebooks_dtype: str, steps: StepLog,
                share_weights: bool = True) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """ModelProtos + codebooks -> files in the staging folder; with `share_weights`, each stage's weights file too
    (returned among the paths, by file name) and, per graph role, the weights files it reads."""
    with steps.step("write") as said:
        paths = {role: stage / spec.filename for role, spec in specs.items()}
        external: dict[str, list[str]] = {}
        for stage_name in STAGES if share_weights else ():
            group = {role: protos[role] for role, spec in specs.items() if spec.stage == stage_name}
            shared = move_weights(group, stage, stage_name)
            if not shared.unique_blobs:  # nothing large enough to move: the graphs stay self-contained
                shared.path.unlink()
                continue
            paths[shared.path.name] = shared.path
            external.update({role: [shared.path.name] for role, moved in shared.tensors.items() if moved})
            said.append(shared.summary())
        for role, proto in protos.items():
            onnx.save(proto, str(paths[role]))
        paths["codebooks"] = stage / "codebooks.npy"
        np.save(paths["codebooks"], model.quantizer.codebooks.detach().cpu().numpy().astype(codebooks_dtype))
        if isinstance(model, DacModel):
            paths[PROJECTIONS] = stage / PROJECTIONS_FILE
            save_projections(paths[PROJECTIONS], {k: v.numpy() for k, v in model.quantizer.projections().items()})
        said.append(", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in paths.values()))
    return paths, external


def _step_parity(model: APUCodec, networks: dict[str, StepNetwork], specs: dict[str, GraphSpec],
                 paths: dict[str, Path], steps: StepLog) -> tuple[dict[str, parity.GraphParity], list[str]]:
    """files -> streamed-vs-whole-file error per graph; under MIN_SNR_DB refuses the export (GroupNorm models,
    which cannot stream exactly, are measured as approximate by pooled_export instead)."""
    if getattr(model.config, "norm", None) == "group":
        return {}, []
    with steps.step("parity") as said:
        parities = parity.check_parity(model, networks, paths)
        said.append(", ".join(f"{role} SNR {p.snr_db:.1f} dB (max abs err {p.max_abs_error:.1e}, at the edges "
                              f"{p.edge_max_abs_error:.1e})" for role, p in parities.items()))
    for role, p in parities.items():
        if p.snr_db < parity.MIN_SNR_DB:
            raise ApucodecError(f"{specs[role].filename}: streamed ONNX output differs from whole-file PyTorch (SNR "
                                f"{p.snr_db:.1f} dB < {parity.MIN_SNR_DB:.0f} dB); export refused")
    return parities, []
