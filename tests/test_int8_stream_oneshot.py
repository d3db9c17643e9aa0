"""CPU INT8: a live stream (4-frame step graphs) and a one-shot call (16-frame step graphs) give the same codes.

The tiny model is quantized once by `quantize_cpu`. A cached value must be rounded on the same grid whichever step
it is read in: a cache read from `state` is either left float and rounded with the rest of its layer's input (the
Concat that joins it to the step's new samples, which the convolution quantizes: the default, convolutions only),
or, where a wider op set quantizes the cache itself, rounded on that Concat's grid (calibration/state_ranges.py).
Before that tie the caches had their own narrower ranges and the two paths differed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import apucodec
from apucodec.calibration.state_ranges import state_range_ties, tie_ranges
from apucodec.contract.steps import step_role
from apucodec.model.directory import load_model_dir
from tests.audio_factory import mixture
from tests.runtime_models import quantized_tiny

RATE = 44100


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantized_tiny(tmp_path_factory.mktemp("int8_stream"))


def _q_params(model: onnx.ModelProto) -> dict[str, tuple[float, int]]:
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: (float(init[n.input[1]]), int(init[n.input[2]]))
            for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in init}


def test_every_cache_is_rounded_on_its_layer_inputs_grid(int8_model: Path) -> None:
    model = load_model_dir(int8_model)
    for stage in ("encoder", "decoder"):
        ties = state_range_ties(onnx.load(str(model.path_of(step_role(stage, 16))), load_external_data=False))
        assert ties, stage                                   # the tiny model's layers all keep caches
        for frames in (4, 16):
            params = _q_params(onnx.load(str(model.path_of(step_role(stage, frames, "cpu-int8")))))
            joined_and_rounded = [cache for cache, joined in ties.items() if joined in params]
            assert joined_and_rounded, (stage, frames)       # the convolutions' inputs are quantized
            for cache, joined in ties.items():
                if cache in params:                          # never on a grid of its own
                    assert params[cache] == params[joined], (stage, frames, cache)


def test_tie_ranges_copies_the_concat_range_only_where_both_were_calibrated() -> None:
    class Ranges:
        def __init__(self) -> None:
            self.data = {"cache": (0.0, 1.0), "joined": (-2.0, 3.0)}

        def __contains__(self, key: str) -> bool:
            return key in self.data

    ranges = Ranges()
    assert tie_ranges(ranges, {"cache": "joined", "other": "joined"}) == 1
    assert ranges.data == {"cache": (-2.0, 3.0), "joined": (-2.0, 3.0)}


def test_int8_stream_codes_equal_one_shot_codes(int8_model: Path) -> None:
    x = (0.5 * mixture(2.3, seed=11)).astype(np.float32)
    rng = np.random.default_rng(5)
    with apucodec.load(int8_model, precision="int8", int8_floor=float("-inf"), threads=1,
                       eps={"encoder": "cpu", "decoder": "cpu"}) as codec:
        assert codec.graph_precision() == "cpu-int8"
        one_shot = codec.encode(x)
        parts = []
        with codec.stream() as s:
            start = 0
            while start < x.size:
                n = int(rng.integers(1, 5000))
                parts.append(s.encode(x[start: start + n]))
                start += n
        streamed = np.concatenate([*parts, s.flush().codes], axis=-1)
    np.testing.assert_array_equal(streamed, one_shot.array)
