"""The output writer: no name until committed (O_TMPFILE, or a named temp file that is cleaned up), the umask
honoured, a symlinked output replaces its target."""

from __future__ import annotations

import os
import stat

import pytest

from apucodec.io.outputs import open_binary_output, open_output
from tests.refusal_helpers import listing


def test_output_has_no_name_until_committed_and_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with open_output(tmp_path / "a.bin") as out:
            out.raw.write(b"hello")
            assert listing(tmp_path) == []  # unnamed while being written
        assert (tmp_path / "a.bin").read_bytes() == b"hello"
        assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == 0o640
    finally:
        os.umask(old)
    with pytest.raises(RuntimeError), open_output(tmp_path / "a.bin") as out:
        out.raw.write(b"replacement")
        raise RuntimeError("failed mid-write")
    assert (tmp_path / "a.bin").read_bytes() == b"hello" and listing(tmp_path) == ["a.bin"]


def test_named_temp_fallback_cleans_up(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)  # as on macOS or a filesystem without O_TMPFILE
    with pytest.raises(KeyboardInterrupt), open_output(tmp_path / "b.bin") as out:
        out.raw.write(b"partial")
        assert len(listing(tmp_path)) == 1  # the named temp exists while writing
        raise KeyboardInterrupt
    assert listing(tmp_path) == []
    with open_output(tmp_path / "b.bin") as out:
        out.raw.write(b"whole")
    assert listing(tmp_path) == ["b.bin"] and (tmp_path / "b.bin").read_bytes() == b"whole"


def test_symlinked_output_replaces_its_target(tmp_path):
    (tmp_path / "real.bin").write_bytes(b"old")
    os.symlink(tmp_path / "real.bin", tmp_path / "link.bin")
    with open_binary_output(tmp_path / "link.bin") as fh:
        fh.write(b"new")
    assert (tmp_path / "link.bin").is_symlink() and (tmp_path / "real.bin").read_bytes() == b"new"
