"""One way to step a graph (apucodec/runtime/onnx_step.py): a raw ORT session and a runtime stage session step
identically, a stage's Stepper geometry is stated once, and a stream through stage_stepper is what a CodecEngine
computes. Torch-free: the checked-in tiny model."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from apucodec.model.directory import load_model_dir
from apucodec.runtime import CodecEngine
from apucodec.runtime.onnx_step import onnx_step, stage_stepper
from apucodec.runtime.sessions import open_sessions
from apucodec.runtime.stepper import Stepper
from tests.audio_factory import speech_like
from tests.runtime_models import CPU_ONLY


def _step_inputs(record, rng):
    x, state, bounds = (rng.standard_normal(t.shape).astype(np.float32) * 0.1 for t in record.inputs)
    return x, state, np.array([3.0, 5.0], dtype=np.float32)


def test_a_raw_session_and_a_stage_session_step_alike(runtime_model):
    model = load_model_dir(runtime_model)
    opened, _ = open_sessions(model, CPU_ONLY, warn=None, stages=("encoder",))
    record = opened["encoder"].record
    raw = ort.InferenceSession(str(model.path_of(record.role)), providers=["CPUExecutionProvider"])
    args = _step_inputs(record, np.random.default_rng(0))
    recorded: list = []
    for a, b in zip(onnx_step(raw, recorded=recorded)(*args), onnx_step(opened["encoder"], record)(*args),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert [sorted(f) for f in recorded] == [["audio", "bounds", "state"]]
    assert recorded[0]["state"] is not args[1]  # copies: a reader may hold them after the stream moved on
    opened["encoder"].close()


def test_stage_geometry_is_stated_once():
    def step(*_):
        raise AssertionError("not run")

    enc = Stepper.for_stage(step, "encoder", hop=512, latent_dim=16, delay_samples=4096, step_frames=4,
                            state_size=10, horizon=9)
    dec = Stepper.for_stage(step, "decoder", hop=512, latent_dim=16, delay_samples=1000, step_frames=4,
                            state_size=7, horizon=9, lead_frames=2)
    assert (enc.in_rate, enc.out_rate, enc.in_channels, enc.out_channels, enc.delay) == (512, 1, 1, 16, 8)
    assert (dec.in_rate, dec.out_rate, dec.in_channels, dec.out_channels, dec.delay) == (1, 512, 16, 1, 1000)
    assert enc.step_samples == 2048 and dec.state.shape == (1, 7) and dec.frames_in == -2
    with pytest.raises(ValueError, match="encoder or decoder"):
        Stepper.for_stage(step, "rvq", hop=512, latent_dim=16, delay_samples=0, step_frames=4, state_size=1,
                          horizon=1)


def test_a_stream_through_stage_stepper_is_what_the_codec_encodes(runtime_model):
    model = load_model_dir(runtime_model)
    codec = CodecEngine.open(runtime_model, CPU_ONLY, warn=None, stages=("encoder",), step_frames=4)
    audio = speech_like(0.7)
    record = model.files["encoder.s4"]
    raw = ort.InferenceSession(str(model.path_of("encoder.s4")), providers=["CPUExecutionProvider"])
    stepper = stage_stepper(model, record, onnx_step(raw, record))
    frames = -(-audio.size // model.hop)
    latent = np.concatenate([stepper.push(audio[None]), stepper.finish(frames)], axis=1)
    ours = codec.stepper("encoder")
    theirs = np.concatenate([ours.push(audio[None]), ours.finish(frames)], axis=1)
    np.testing.assert_array_equal(latent, theirs)
    assert latent.shape == (model.config.latent_dim, frames)


def test_a_graph_that_is_not_a_step_graph_is_refused(runtime_model):
    class OneInOneOut:
        inputs, outputs = {"x": (1,)}, ["y"]

        def run_feeds(self, feeds):  # pragma: no cover - never reached
            return {}

    with pytest.raises(ValueError, match="takes"):
        onnx_step(OneInOneOut())
    with pytest.raises(ValueError, match="not a step graph"):
        stage_stepper(load_model_dir(runtime_model), load_model_dir(runtime_model).files["codebooks"], print)
