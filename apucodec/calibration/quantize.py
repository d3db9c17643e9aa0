"""The quantize-encoder pass: calibration windows -> Quark -> checks -> encoder.int8.onnx + manifest, atomically.

Everything is staged in a hidden folder inside the model directory and only moved into place once the quantized
graph has loaded on the plain CPU EP, been scored on held-out windows and its NPU op check is done. The previous
encoder.int8.onnx (if any) is kept aside until the new manifest is written, so any failure — bad audio, a Quark
error, Ctrl-C, a full disk — leaves the directory exactly as it was. Quark writes a `quantized_info.csv` into the
current directory and caches calibration tensors on disk; both are confined to the staging folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.calibration.custom_ops import custom_domains, find_library
from apucodec.calibration.feeds import level_cycle
from apucodec.calibration.fidelity import FidelityReport, cpu_session, measure_fidelity
from apucodec.calibration.npu_ops import NpuOpReport, check_npu_ops
from apucodec.calibration.presets import (
    DEFAULT_PRESET,
    QUARK_VERSION_TESTED,
    build_qconfig,
    import_quark,
    preset,
    quark_version,
)
from apucodec.calibration.reader import WindowCallback, WindowDataReader
from apucodec.calibration.windows import CalibrationWindows, collect_windows
from apucodec.errors import ApucodecError
from apucodec.extras import require
from apucodec.model_dir import ModelDir, file_entry, load_model_dir

INT8_ROLE = "encoder_int8"
INT8_FILENAME = "encoder.int8.onnx"
OPSET = 17
DEFAULT_WINDOWS = 64

StatusCallback = Callable[[str], None]


@dataclass
class QuantizeResult:
    model: ModelDir
    path: Path
    preset: str
    calibration: CalibrationWindows
    fidelity: FidelityReport
    npu: NpuOpReport
    quantize_seconds: float
    total_seconds: float
    custom_op_domains: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        cal = self.calibration
        skipped = f", {len(cal.files_skipped)} files skipped" if cal.files_skipped else ""
        silent = f", {cal.silent_skipped} near-silent windows skipped" if cal.silent_skipped else ""
        out = [f"calibrated {self.preset} on {len(cal.calibration)} windows from {cal.files_used} files"
               f"{skipped}{silent}; quantization took {self.quantize_seconds:.1f} s"]
        out += self.fidelity.lines()
        out += self.npu.lines()
        if self.custom_op_domains:
            out.append(f"uses {', '.join(self.custom_op_domains)} custom ops: sessions register Quark's library "
                       "(needs amd-quark and torch installed where it runs)")
        out.append(f"wrote {self.path} ({self.path.stat().st_size / 1e6:.2f} MB) in {self.total_seconds:.1f} s total")
        return out


@contextlib.contextmanager
def _inside(folder: Path, quiet: bool) -> Iterator[io.StringIO]:
    """cwd -> `folder` (Quark writes quantized_info.csv into the cwd); Quark's own output captured if quiet.

    Quark logs some notices through the root logger, whose handler holds the real stderr, so quiet mode also
    raises the root level for the duration.
    """
    previous = os.getcwd()
    captured = io.StringIO()
    root = logging.getLogger()
    level = root.level
    os.chdir(folder)
    try:
        if quiet:
            root.setLevel(logging.ERROR)
            with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
                yield captured
        else:
            yield captured
    finally:
        root.setLevel(level)
        os.chdir(previous)


def _tail(text: str, lines: int = 3) -> str:
    useful = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return " | ".join(useful[-lines:])


@contextlib.contextmanager
def _calibration_progress(on_window: WindowCallback | None) -> Iterator[bool]:
    """Report each window as Quark's calibrator runs the float model on it; yields whether that hook is in place.

    Quark 0.13 drains our reader into its own CachedDataReader up front (instant) and then feeds the cached
    windows to the calibration inference, which is where the minutes go. Swapping in a subclass of that cache for
    the duration of the call makes the progress bar follow the real work. If a future Quark moves it, the caller
    falls back to counting windows as they are handed over.
    """
    module = sys.modules.get("quark.onnx.quantization.quantize")
    cache_class = getattr(module, "CachedDataReader", None)
    if on_window is None or cache_class is None:
        yield False
        return

    class ReportingCache(cache_class):  # type: ignore[misc, valid-type]
        def reset_iter(self) -> None:
            super().reset_iter()
            self._apucodec_fed = 0

        def get_next(self):  # type: ignore[no-untyped-def]
            item = super().get_next()
            if item is not None:
                self._apucodec_fed = getattr(self, "_apucodec_fed", 0) + 1
                on_window(min(self._apucodec_fed, len(self)), len(self))
            return item

    module.CachedDataReader = ReportingCache
    try:
        yield True
    finally:
        module.CachedDataReader = cache_class


@contextlib.contextmanager
def _interrupt_guard() -> Iterator[list[bool]]:
    """Remember a Ctrl-C that arrives while Quark runs: its calibrator catches BaseException and re-raises it as a
    RuntimeError ("The calibration failed"), which would turn the user's interrupt into a bogus quantization error."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_sigint(signum: int, frame: Any) -> None:
        seen[0] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_quark(quark_onnx: Any, chosen_name: str, float_path: Path, out_path: Path, input_name: str,
               windows: list[Any], on_window: WindowCallback | None, work: Path, quiet: bool, workers: int = 0,
               minmse_mode: str | None = None) -> None:
    config = build_qconfig(quark_onnx, preset(chosen_name), str(work), workers, minmse_mode)
    with _inside(work, quiet) as captured, _calibration_progress(on_window) as hooked, \
            _interrupt_guard() as interrupted:
        reader = WindowDataReader(input_name, windows, None if hooked else on_window)
        try:
            quark_onnx.ModelQuantizer(config).quantize_model(str(float_path), str(out_path), reader)
        except (KeyboardInterrupt, ApucodecError):
            raise
        except Exception as exc:  # Quark raises assorted types (ValueError, RuntimeError, onnx errors)
            if interrupted[0]:
                raise KeyboardInterrupt from None
            detail = _tail(captured.getvalue())
            raise ApucodecError(f"{float_path.name}: Quark could not quantize it with preset {chosen_name} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                                + (f"; Quark said: {detail}" if detail else "")) from None
    if not out_path.is_file():
        raise ApucodecError(f"{float_path.name}: Quark finished without writing a quantized model")


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _install(model: ModelDir, staged: Path, entry_fields: dict[str, Any], quantization: dict[str, Any],
             quark_ver: str) -> Path:
    """Move the staged file in and write the manifest; restore the previous state if anything fails."""
    target = model.path / INT8_FILENAME
    backup = None
    if target.exists():
        backup = staged.parent / f"previous.{INT8_FILENAME}"
        os.replace(target, backup)
    manifest_before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in model.manifest.items()}
    try:
        os.replace(staged, target)
        model.files[INT8_ROLE] = file_entry(target, INT8_ROLE, **entry_fields)
        model.manifest["quantization"] = quantization
        producers = model.manifest.setdefault("producers", {})
        producers["amd-quark"] = quark_ver
        model.save_manifest()
    except BaseException as exc:
        target.unlink(missing_ok=True)
        if backup is not None:
            os.replace(backup, target)
        model.manifest.clear()
        model.manifest.update(manifest_before)
        if isinstance(exc, OSError):
            raise ApucodecError(f"{model.path}: cannot write the model directory ({exc.strerror or exc}); "
                                "it was left as it was") from None
        raise
    return target


def quantize_encoder(model_path: str | Path, calib_folder: str | Path, preset_name: str = DEFAULT_PRESET,
                     windows: int = DEFAULT_WINDOWS, seed: int = 0, conv2d: bool = False,
                     on_window: WindowCallback | None = None, on_status: StatusCallback | None = None,
                     quiet: bool = True, threads: int = 0, level_gains_db: Sequence[float] = (),
                     minmse_mode: str | None = None) -> QuantizeResult:
    """Quantize the model directory's FP32 encoder with Quark and record the result in its manifest.

    `level_gains_db` attenuates the calibration windows cyclically (window i by gains[i % len]) so quiet
    material is represented without adding windows; `threads` also sets Quark's range-search workers.
    """
    started = time.perf_counter()
    status = on_status or (lambda _message: None)
    chosen = preset(preset_name)
    model = load_model_dir(Path(model_path).absolute())   # refuses a missing encoder.onnx or a sha256 mismatch
    geometry = model.geometry
    float_path = model.path_of("encoder")
    status(f"collecting {windows} calibration windows of {geometry.window_samples / model.config.sample_rate:.2f} s "
           f"from {calib_folder}")
    calibration = collect_windows(calib_folder, geometry.window_samples, count=windows, seed=seed)
    if len(calibration.calibration) < windows:
        status(f"only {len(calibration.calibration)} calibration windows available (asked for {windows})")
    if level_gains_db:
        calibration.calibration = level_cycle(calibration.calibration, level_gains_db)

    if find_library() is None:
        status("loading amd-quark: the first run on a machine compiles its custom-op library (about a minute)")
    quark_onnx = import_quark(verbose=not quiet)
    onnx = require("onnx", "quantize")
    from apucodec.export.cost import graph_gflop

    quark_ver = quark_version()

    try:
        work = Path(tempfile.mkdtemp(prefix=".quantize-", dir=model.path))
    except OSError as exc:
        raise ApucodecError(f"{model.path}: cannot write into the model directory ({exc.strerror})") from None
    try:
        float_model = onnx.load(str(float_path))
        input_name = float_model.graph.input[0].name
        dims = [d.dim_value for d in float_model.graph.input[0].type.tensor_type.shape.dim]
        if dims != [1, 1, geometry.window_samples]:
            raise ApucodecError(f"{float_path}: input shape {dims} does not match the manifest's window "
                                f"[1, 1, {geometry.window_samples}]")
        if _opset(float_model) != OPSET:
            status(f"note: {float_path.name} is opset {_opset(float_model)}; the NPU flow recommends {OPSET}")
        source = float_path
        if conv2d:
            from apucodec.calibration.conv2d import conv1d_to_conv2d

            source = work / "encoder.conv2d.onnx"
            onnx.save(conv1d_to_conv2d(float_model), str(source))
        del float_model

        status(f"quantizing with {chosen.name} ({chosen.description})")
        staged = work / INT8_FILENAME
        q_started = time.perf_counter()
        _run_quark(quark_onnx, chosen.name, source, staged, input_name, calibration.calibration, on_window, work,
                   quiet, threads, minmse_mode)
        quantize_seconds = time.perf_counter() - q_started

        quantized = onnx.load(str(staged))
        domains = custom_domains(node.domain for node in quantized.graph.node)
        npu = check_npu_ops(quantized)
        opset = _opset(quantized)
        graph_ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
                            for n in quantized.graph.node)
        gflop = graph_gflop(quantized)
        del quantized

        status(f"scoring on {len(calibration.evaluation)} held-out windows")
        int8_session = cpu_session(staged, domains, threads)
        fidelity = measure_fidelity(cpu_session(float_path, threads=threads), int8_session,
                                    cpu_session(model.path_of("decoder"), threads=threads), model.codebooks(),
                                    geometry, calibration.evaluation)
        del int8_session

        encoder_entry = model.files["encoder"]
        entry_fields = {k: encoder_entry[k] for k in ("inputs", "outputs") if k in encoder_entry}
        qdq_format = "QDQ" + (f" ({', '.join(domains)} custom ops)" if domains else "")
        entry_fields.update({"preset": chosen.name, "format": qdq_format,
                             "graph": {"nodes": sum(graph_ops.values()), "ops": dict(sorted(graph_ops.items())),
                                       "opset": opset, "gflop": gflop}})
        if domains:
            entry_fields["custom_op_domains"] = domains
        quantization = {
            "preset": chosen.name,
            "description": chosen.description,
            "activation_bits": chosen.activation_bits,
            "weight_bits": chosen.weight_bits,
            "power_of_two_scales": chosen.power_of_two_scales,
            "format": qdq_format,
            "opset": opset,
            "conv2d": conv2d,
            "quark_version": quark_ver,
            "quark_version_tested": QUARK_VERSION_TESTED,
            "calibration": {"folder": str(calib_folder), "seed": seed, "windows_requested": windows,
                            "window_samples": geometry.window_samples, **calibration.summary(),
                            "level_gains_db": list(level_gains_db), "minmse_mode": minmse_mode or "All",
                            "skipped_files": dict(list(calibration.files_skipped.items())[:20])},
            "fidelity": fidelity.to_dict(),
            "npu_ops": npu.to_dict(),
            "custom_ops": ({"domains": domains, "library": "amd-quark compiled custom-op library "
                            "(register_custom_ops_library; needs amd-quark and torch where the encoder runs)"}
                           if domains else None),
            "seconds": {"quantize": round(quantize_seconds, 2)},
        }
        total = time.perf_counter() - started
        quantization["seconds"]["total"] = round(total, 2)
        target = _install(model, staged, entry_fields, quantization, quark_ver)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return QuantizeResult(model, target, chosen.name, calibration, fidelity, npu, quantize_seconds,
                          time.perf_counter() - started, domains)

