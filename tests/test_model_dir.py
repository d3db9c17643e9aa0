"""The model-directory validator: every stage opens a model through it, so it must name exactly what is wrong."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from apucodec.errors import ApucodecError
from apucodec.model.directory import (
    ENV_VAR,
    FORMAT_VERSION,
    MANIFEST_NAME,
    load_model_dir,
    model_id,
)
from apucodec.model.location import locate_model


@pytest.fixture
def model_copy(runtime_model, tmp_path):
    """A private copy: these tests damage it."""
    return shutil.copytree(runtime_model, tmp_path / "model")


def edit_manifest(path, change) -> None:
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    change(manifest)
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_exported_directory_loads_and_verifies(model_copy):
    model = load_model_dir(model_copy)
    assert model.model_id == model_id(model.files)
    assert model.codebooks().shape == tuple(model.files["codebooks"].shape)
    assert model.label.endswith(f"(model {model.model_id})")


@pytest.mark.parametrize("role", ["encoder.s4", "codebooks", "decoder.s8"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_changed_byte_in_any_file_is_reported_by_name(model_copy, role, where):
    model = load_model_dir(model_copy)
    path = model.path_of(role)
    data = bytearray(path.read_bytes())
    index = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ApucodecError, match="sha256 does not match") as info:
        load_model_dir(model_copy)
    assert str(path) in str(info.value)
    load_model_dir(model_copy, verify=False)  # opening without verification still works (e.g. for `doctor`)


def test_missing_file_is_named(model_copy):
    (model_copy / "decoder.s8.onnx").unlink()
    with pytest.raises(ApucodecError, match=r"decoder\.s8\.onnx: missing from the model directory"):
        load_model_dir(model_copy)


def test_unknown_format_version_is_refused(model_copy):
    edit_manifest(model_copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ApucodecError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        load_model_dir(model_copy)


def test_foreign_manifest_is_refused(model_copy):
    edit_manifest(model_copy, lambda m: m.update(format="something-else"))
    with pytest.raises(ApucodecError, match="not an apucodec manifest"):
        load_model_dir(model_copy)


def test_unreadable_manifest(model_copy):
    (model_copy / MANIFEST_NAME).write_text("{ not json")
    with pytest.raises(ApucodecError, match="unreadable manifest") as info:
        load_model_dir(model_copy)
    assert str(model_copy / MANIFEST_NAME) in str(info.value)


def test_manifest_without_a_required_role(model_copy):
    edit_manifest(model_copy, lambda m: m["files"].pop("codebooks"))
    with pytest.raises(ApucodecError, match="lists no codebooks file"):
        load_model_dir(model_copy)


def test_malformed_codec_config(model_copy):
    edit_manifest(model_copy, lambda m: m["codec"].update(bogus=1))
    with pytest.raises(ApucodecError, match="malformed manifest"):
        load_model_dir(model_copy)


def test_step_graph_that_disagrees_with_its_stage_is_refused(model_copy):
    edit_manifest(model_copy, lambda m: m["files"]["encoder.s4"].update(state_size=3))
    with pytest.raises(ApucodecError, match="encoder.s4 disagrees with the encoder's streaming facts"):
        load_model_dir(model_copy)


def test_manifest_without_any_decoder_step_graph(model_copy):
    edit_manifest(model_copy, lambda m: [m["files"].pop(r) for r in ("decoder.s4", "decoder.s8")])
    with pytest.raises(ApucodecError, match="lists no decoder file"):
        load_model_dir(model_copy)


def test_version_1_manifest_is_refused_with_one_line(model_copy):
    edit_manifest(model_copy, lambda m: m.update(format_version=1))
    with pytest.raises(ApucodecError, match="format version 1 is not supported"):
        load_model_dir(model_copy)


def test_missing_manifest_and_missing_directory(model_copy, tmp_path):
    (model_copy / MANIFEST_NAME).unlink()
    with pytest.raises(ApucodecError, match="not an apucodec model directory"):
        load_model_dir(model_copy)
    with pytest.raises(ApucodecError, match="no such model directory"):
        load_model_dir(tmp_path / "nowhere")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ApucodecError, match="is not a model directory"):
        load_model_dir(a_file)


def test_model_id_ignores_optional_files(model_copy):
    model = load_model_dir(model_copy)
    files = dict(model.files)
    files["encoder.s8.npu-int8"] = replace(files["encoder.s8"], role="encoder.s8.npu-int8", sha256="0" * 64,
                                            precision="npu-int8")
    assert model_id(files) == model.model_id  # quantizing the encoder keeps .apc files decodable


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert str(locate_model(None, writing=True).path) == "apucodec-model"
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert locate_model(None).path == tmp_path
    assert str(locate_model("given").path) == "given"
