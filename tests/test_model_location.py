"""Which model directory the CLI and the API open: one rule (apucodec.model.location), the same for every caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from apucodec.model.directory import BUNDLED_DIR, ENV_VAR
from apucodec.model.location import locate_model


@pytest.fixture
def nothing_configured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./apucodec-model here
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


def test_order_option_then_environment_then_local_then_bundled(nothing_configured, monkeypatch):
    fallback = locate_model(None)
    assert fallback.path == BUNDLED_DIR and fallback.bundled and not fallback.explicit
    (nothing_configured / "apucodec-model").mkdir()
    local = locate_model(None)
    assert local.path == Path("apucodec-model") and not local.explicit and not local.bundled
    monkeypatch.setenv(ENV_VAR, "from-env")
    assert locate_model(None) == locate_model(None, writing=True)
    assert locate_model(None).path == Path("from-env") and locate_model(None).explicit
    given = locate_model("given")
    assert given.path == Path("given") and given.explicit


def test_writing_never_resolves_to_the_bundled_copy(nothing_configured):
    location = locate_model(None, writing=True)
    assert location.path == Path("apucodec-model") and not location.bundled and not location.explicit


def test_codec_open_and_load_share_the_default(nothing_configured):
    """`CodecEngine.open()` with no path opens what `apucodec.load()` and `apucodec run` open: the bundled model."""
    import apucodec
    from apucodec.runtime import CodecEngine, SessionSettings

    cpu = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1)
    opened = CodecEngine.open(settings=cpu, warn=None, stages=("encoder",))
    loaded = apucodec.load(encoder_ep="cpu", decoder_ep="cpu", threads=1)
    assert opened.model.path == loaded.model.path == BUNDLED_DIR
    assert opened.model.model_id == loaded.model.model_id
