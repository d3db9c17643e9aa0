"""Model-file sha256 checks that remember a match: skipped for an unchanged file, redone for any change."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from apucodec.model import verified_hashes
from apucodec.model.verified_hashes import matches_sha256


def _file(tmp_path: Path, data: bytes = b"graph bytes" * 100) -> tuple[Path, str]:
    path = tmp_path / "g.onnx"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> str:
        raise AssertionError("hashed again")
    monkeypatch.setattr(verified_hashes, "sha256_file", refuse)


def test_unchanged_file_is_not_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, sha = _file(tmp_path)
    root = tmp_path / "cache"
    assert matches_sha256(path, sha, root)
    assert len(list((root / "verified").glob("*.json"))) == 1
    _no_hashing(monkeypatch)
    assert matches_sha256(path, sha, root)


def test_changed_file_is_hashed_and_refused(tmp_path: Path) -> None:
    path, sha = _file(tmp_path)
    root = tmp_path / "cache"
    assert matches_sha256(path, sha, root)
    stat = path.stat()
    with open(path, "r+b") as fh:       # same size, one byte changed, mtime put back: ctime still moves
        fh.write(b"X")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not matches_sha256(path, sha, root)


def test_a_record_for_another_hash_does_not_answer(tmp_path: Path) -> None:
    path, sha = _file(tmp_path)
    root = tmp_path / "cache"
    assert matches_sha256(path, sha, root)
    assert not matches_sha256(path, "0" * 64, root)
    assert matches_sha256(path, sha, root)


def test_mismatch_writes_no_record_and_bad_records_are_ignored(tmp_path: Path) -> None:
    path, sha = _file(tmp_path)
    root = tmp_path / "cache"
    assert not matches_sha256(path, "0" * 64, root)
    assert not (root / "verified").exists() or not list((root / "verified").iterdir())
    assert matches_sha256(path, sha, root)
    record = next((root / "verified").glob("*.json"))
    record.write_text("{not json")
    assert matches_sha256(path, sha, root)          # unreadable record: hashed again, and rewritten


def test_unwritable_cache_still_checks(tmp_path: Path) -> None:
    path, sha = _file(tmp_path)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be")
    assert matches_sha256(path, sha, blocker)
    assert not matches_sha256(path, "0" * 64, blocker)
