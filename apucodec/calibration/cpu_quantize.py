"""`apucodec quantize --target cpu`: CPU INT8 encoder *and* decoder graphs, calibrated on real audio, scored, recorded.

The two graphs are quantized with onnxruntime.quantization (calibration/cpu_int8.py): no new dependency, and the
result is what ORT's CPU EP runs as integer kernels on any x86 (VNNI/AMX where present) or ARM CPU. The encoder is
calibrated on audio windows, the decoder on the dequantized codes of the same windows (what it decodes at run
time). Fidelity is measured on held-out windows with both INT8 graphs in the path (calibration/fidelity.py).

Everything is staged in a hidden folder in the model directory; the graphs move into place and the manifest is
written only after both graphs loaded and were scored, and a failure restores the previous files and manifest.
The manifest edit is one function, `record_cpu_int8`, so a change of manifest format touches one place.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apucodec.calibration.cpu_int8 import DEFAULT_METHOD, CpuInt8Result, quantize_graph_cpu_int8
from apucodec.calibration.feeds import decoder_feeds, window_feeds
from apucodec.calibration.fidelity import FidelityReport, cpu_session, measure_fidelity
from apucodec.calibration.windows import CalibrationWindows, collect_windows
from apucodec.errors import ApucodecError
from apucodec.model_dir import ModelDir, file_entry, load_model_dir

LOG = logging.getLogger("apucodec.quantize")
# Each graph's role and file name in the model directory.
CPU_INT8_FILES = {"encoder": ("encoder_cpu_int8", "encoder.cpu-int8.onnx"),
                  "decoder": ("decoder_cpu_int8", "decoder.cpu-int8.onnx")}
# Each calibration window is one float inference of each graph, so the count is what calibration time scales with.
# More is not better for static ranges: on the bundled model (train folder, seed 0, 8 held-out windows) the INT8
# encoder's output SNR vs FP32 was, for 8/16/32/64 windows, 21.9/22.2/20.2/19.3 dB with MinMax and
# 24.3/24.9/21.2/20.2 dB with the 99.999th percentile (rarer peaks widen the ranges), at 13-76 s on the loaded box.
DEFAULT_CPU_WINDOWS = 16

StatusCallback = Callable[[str], None]


@dataclass
class CpuQuantizeResult:
    model: ModelDir
    paths: dict[str, Path]
    graphs: dict[str, CpuInt8Result]
    calibration: CalibrationWindows
    fidelity: FidelityReport
    total_seconds: float

    def lines(self) -> list[str]:
        cal = self.calibration
        out = [f"calibrated CPU INT8 ({self.graphs['encoder'].method}) on {len(cal.calibration)} windows from "
               f"{cal.files_used} files: encoder {self.graphs['encoder'].seconds:.1f} s, decoder "
               f"{self.graphs['decoder'].seconds:.1f} s"]
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
        message = (f"{self.label}: calibration {done}/{self.total} windows, {elapsed:.1f} s"
                   + (f", ~{left:.0f} s left" if done < self.total else ""))
        LOG.info(message)
        self.status(message)


def record_cpu_int8(model: ModelDir, entries: dict[str, dict[str, Any]], report: dict[str, Any]) -> None:
    """The manifest edit of a CPU INT8 pass: one files[role] entry per graph and a `cpu_int8` section.

    Kept in one function so that a new manifest layout (format version 2, step graphs) changes only this.
    """
    for role, entry in entries.items():
        model.files[role] = entry
    model.manifest["cpu_int8"] = report


def _install(model: ModelDir, staged: dict[str, Path], entry_fields: dict[str, dict[str, Any]],
             report: dict[str, Any]) -> dict[str, Path]:
    targets = {role: model.path / staged_path.name for role, staged_path in staged.items()}
    backups: dict[str, Path] = {}
    manifest_before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in model.manifest.items()}
    try:
        for role, target in targets.items():
            if target.exists():
                backups[role] = staged[role].parent / f"previous.{target.name}"
                os.replace(target, backups[role])
            os.replace(staged[role], target)
        entries = {role: file_entry(target, role, **entry_fields[role]) for role, target in targets.items()}
        record_cpu_int8(model, entries, report)
        model.save_manifest()
    except BaseException as exc:
        for role, target in targets.items():
            target.unlink(missing_ok=True)
            if role in backups:
                os.replace(backups[role], target)
        model.manifest.clear()
        model.manifest.update(manifest_before)
        if isinstance(exc, OSError):
            raise ApucodecError(f"{model.path}: cannot write the model directory ({exc.strerror or exc}); "
                                "it was left as it was") from None
        raise
    return targets


def quantize_cpu(model_path: str | Path, calib_folder: str | Path, windows: int = DEFAULT_CPU_WINDOWS,
                 method: str = DEFAULT_METHOD, seed: int = 0, threads: int = 0,
                 exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (),
                 on_status: StatusCallback | None = None) -> CpuQuantizeResult:
    """Quantize the model directory's FP32 encoder and decoder for the CPU EP and record them in the manifest."""
    started = time.perf_counter()
    status = on_status or (lambda _message: None)
    model = load_model_dir(Path(model_path).absolute())
    geometry = model.geometry
    status(f"collecting {windows} calibration windows of {geometry.window_samples / model.config.sample_rate:.2f} s "
           f"from {calib_folder}")
    calibration = collect_windows(calib_folder, geometry.window_samples, count=windows, seed=seed)
    try:
        work = Path(tempfile.mkdtemp(prefix=".quantize-cpu-", dir=model.path))
    except OSError as exc:
        raise ApucodecError(f"{model.path}: cannot write into the model directory ({exc.strerror})") from None
    try:
        fp32_encoder = cpu_session(model.path_of("encoder"), threads=threads)
        fp32_decoder = cpu_session(model.path_of("decoder"), threads=threads)
        enc_in = fp32_encoder.get_inputs()[0].name
        dec_in = fp32_decoder.get_inputs()[0].name
        staged = {role: work / name for role, name in CPU_INT8_FILES.values()}
        n = len(calibration.calibration)
        graphs: dict[str, CpuInt8Result] = {}
        status(f"encoder: quantizing ({method} ranges, uint8 activations, int8 per-channel weights)")
        graphs["encoder"] = quantize_graph_cpu_int8(
            model.path_of("encoder"), staged["encoder_cpu_int8"], window_feeds(calibration.calibration, enc_in),
            method=method, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types,
            on_feed=FeedProgress("encoder", n, status))
        status("decoder: quantizing on the dequantized codes of the same windows")
        graphs["decoder"] = quantize_graph_cpu_int8(
            model.path_of("decoder"), staged["decoder_cpu_int8"],
            decoder_feeds(fp32_encoder, model.codebooks(), calibration.calibration, enc_in, dec_in),
            method=method, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types,
            on_feed=FeedProgress("decoder", n, status))

        status(f"scoring on {len(calibration.evaluation)} held-out windows")
        fidelity = measure_fidelity(fp32_encoder, cpu_session(staged["encoder_cpu_int8"], threads=threads),
                                    fp32_decoder, model.codebooks(), geometry, calibration.evaluation,
                                    int8_decoder=cpu_session(staged["decoder_cpu_int8"], threads=threads))
        entry_fields = {}
        for stage, (role, _name) in CPU_INT8_FILES.items():
            source = model.files[stage]
            entry_fields[role] = {**{k: source[k] for k in ("inputs", "outputs") if k in source},
                                  "target": "cpu", "format": "QDQ", "graph": {"ops": graphs[stage].ops}}
        report = {
            "target": "CPUExecutionProvider",
            "quantizer": "onnxruntime.quantization.quantize_static",
            "graphs": {stage: graphs[stage].to_dict() for stage in graphs},
            "calibration": {"folder": str(calib_folder), "seed": seed, "windows_requested": windows,
                            "window_samples": geometry.window_samples, **calibration.summary()},
            "fidelity": fidelity.to_dict(),
            "seconds": {"total": round(time.perf_counter() - started, 2)},
        }
        paths = _install(model, staged, entry_fields, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CpuQuantizeResult(model, paths, graphs, calibration, fidelity, time.perf_counter() - started)
