"""Exact tail-percentile activation ranges (calibration/tail_ranges.py), the CPU INT8 encoder's default.

The collector must give the exact percentile of everything it saw, fed in pieces; and on the bundled model (a
trained 4.4M-parameter codec, where the effect was measured) an encoder quantized with tail ranges must agree with
the FP32 codes clearly more often than one quantized with ORT's percentile ranges, on the same calibration steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from apucodec.calibration.tail_ranges import TailCollector, calibrated_tensors, tail_ranges, tail_size


@pytest.mark.parametrize("percentile", [99.0, 99.9, 99.98])
def test_collector_gives_the_exact_percentile_of_all_pieces(percentile: float) -> None:
    rng = np.random.default_rng(0)
    pieces = [rng.standard_t(3, size=(3, 5000)).astype(np.float32) * (i + 1) for i in range(6)]
    collector = TailCollector()
    keep = tail_size(pieces[0].size, len(pieces), percentile)
    for piece in pieces:
        collector.add("x", piece, keep)
    values = np.sort(np.concatenate([p.ravel() for p in pieces]))
    beyond = int(np.floor(values.size * (1 - percentile / 100)))
    assert collector.range("x", percentile) == (float(values[beyond]), float(values[values.size - 1 - beyond]))
    assert collector.top["x"].size <= max(keep, pieces[0].size)   # bounded memory, not every value


def test_collector_refuses_a_percentile_beyond_what_it_kept() -> None:
    collector = TailCollector()
    collector.add("x", np.arange(10000, dtype=np.float32), keep=5)
    with pytest.raises(ValueError, match="kept tail"):
        collector.range("x", 90.0)


def test_tail_ranges_over_a_graph(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.full((2, 1, 1), 2.0, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"), helper.make_node("Relu", ["y"], ["z"], name="r")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1000])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 1000])], [w])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert calibrated_tensors(onnx.load(str(path)), ["Conv"]) == ["x", "y"]     # the Relu is not calibrated
    x = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(1, 1, 1000)
    ranges = tail_ranges(path, [{"x": x}], ["Conv"], percentile=99.0, work=tmp_path)
    assert ranges["x"] == (float(x.ravel()[10]), float(x.ravel()[-11]))
    assert ranges["y"] == pytest.approx((2 * float(x.ravel()[10]), 2 * float(x.ravel()[-11])))  # 2 channels


@pytest.mark.slow
def test_bundled_encoder_agrees_more_with_tail_ranges(tmp_path: Path) -> None:
    """Same calibration steps, two range methods, cb1 agreement with FP32 on generated audio at three levels."""
    from apucodec.calibration.audio_edges import audio_edge_nodes, latent_edge_nodes
    from apucodec.calibration.cpu_int8 import quantize_graph_cpu_int8
    from apucodec.calibration.fidelity import cpu_session
    from apucodec.calibration.step_nodes import bounds_nodes
    from apucodec.calibration.streams import graph_stepper, stream
    from apucodec.contract.steps import frames_for_length
    from apucodec.model.directory import BUNDLED_DIR, load_model_dir
    from apucodec.runtime.onnx_step import onnx_step
    from apucodec.runtime.rvq_projected import load_rvq
    from tests.audio_factory import mixture, speech_like

    model = load_model_dir(BUNDLED_DIR)
    role = "encoder.s128"
    fp32 = cpu_session(model.path_of(role), threads=1)

    def run(step, clip: np.ndarray) -> np.ndarray:
        return stream(graph_stepper(model, role, step), clip[None], frames_for_length(clip.size, model.hop))

    recorded: list = []
    recorder = onnx_step(fp32, recorded=recorded)
    for seed in range(3):
        run(recorder, (0.3 * mixture(4.0, seed=seed) + 0.2 * speech_like(4.0, seed=seed + 9)).astype(np.float32))
    graph = onnx.load(str(model.path_of(role)), load_external_data=False)
    mask = bounds_nodes(graph)
    excluded = sorted({*mask, *[n for n in [*audio_edge_nodes(graph, "encoder"), *latent_edge_nodes(graph, "encoder")]
                                if n not in mask]})
    rvq = load_rvq(model)
    held_out = [(gain * source(3.0, seed=40 + i)).astype(np.float32)
                for i, source in enumerate((mixture, speech_like)) for gain in (0.5, 0.1, 0.03)]
    reference = [rvq.quantize(np.ascontiguousarray(run(onnx_step(fp32), x).T))[0] for x in held_out]
    agreement = {}
    for method in ("percentile", "tail"):
        out = tmp_path / f"{method}.onnx"
        quantize_graph_cpu_int8(model.path_of(role), out, iter(recorded), method=method, exclude_nodes=excluded)
        step = onnx_step(cpu_session(out, threads=1))
        codes = [rvq.quantize(np.ascontiguousarray(run(step, x).T))[0] for x in held_out]
        agreement[method] = float(np.mean(np.concatenate([a == b for a, b in zip(reference, codes, strict=True)])))
    assert agreement["tail"] >= agreement["percentile"] + 0.05, agreement
