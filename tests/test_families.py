"""The manifest's codec family: the project's own by default, unknown families refused with one line."""

import json
import shutil

import pytest

from apucodec.contract.config import CodecConfig, preset
from apucodec.contract.families import DEFAULT_FAMILY, codec_from_config, config_from_codec, family_of
from apucodec.contract.manifest import read_manifest
from apucodec.errors import ApucodecError
from apucodec.model.directory import BUNDLED_DIR


def test_absent_family_is_the_projects_own_and_round_trips():
    cfg = preset("tiny")
    codec = codec_from_config(cfg)
    assert "family" not in codec  # the project's own manifests stay as they were
    assert family_of(codec) == DEFAULT_FAMILY
    assert config_from_codec(codec) == cfg


def test_unknown_family_is_refused_when_the_manifest_is_read(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(BUNDLED_DIR, model)
    data = json.loads((model / "manifest.json").read_text())
    data["codec"]["family"] = "no-such-codec"
    (model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ApucodecError, match="unknown codec family 'no-such-codec'"):
        read_manifest(model / "manifest.json")


def test_a_config_that_is_not_a_family_is_refused():
    class Other:
        pass

    with pytest.raises(ValueError, match="not a registered codec family"):
        codec_from_config(Other())  # type: ignore[arg-type]
    assert isinstance(config_from_codec(CodecConfig().to_dict()), CodecConfig)
