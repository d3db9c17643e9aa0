"""`apucodec cache`: sizes per kind, --clear, and the size cap on optimized graphs (least recently used go)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from apucodec.model.cache_admin import clear, enforce_cap, mark_used, usage

ROOT = Path(__file__).resolve().parents[1]


def _entry(folder: Path, name: str, size: int, used: float) -> Path:
    graph = folder / f"{name}.onnx"
    graph.write_bytes(b"x" * size)
    meta = graph.with_suffix(".json")
    meta.write_text("{}")
    os.utime(meta, (used, used))
    return graph


def test_cap_removes_least_recently_used_and_keeps_the_new_entry(tmp_path):
    folder = tmp_path / "ort-optimized"
    folder.mkdir()
    now = time.time()
    old = _entry(folder, "old", 1000, now - 300)
    middle = _entry(folder, "middle", 1000, now - 200)
    new = _entry(folder, "new", 1000, now - 400)  # just written, though its time says otherwise
    mark_used(middle)
    removed = enforce_cap(folder, keep=new, cap=2100)
    assert removed == [old] and not old.exists() and not old.with_suffix(".json").exists()
    assert middle.exists() and new.exists()
    assert enforce_cap(folder, keep=new, cap=0) == [middle] and new.exists()


def test_usage_and_clear(tmp_path):
    (tmp_path / "ort-optimized").mkdir()
    _entry(tmp_path / "ort-optimized", "a", 5000, time.time())
    (tmp_path / "verified").mkdir()
    (tmp_path / "verified" / "r.json").write_text("{}" * 10)
    sizes = {u.kind: (u.files, u.bytes) for u in usage(tmp_path)}
    assert sizes["ort-optimized"] == (2, 5002) and sizes["verified"] == (1, 20) and sizes["vitisai"] == (0, 0)
    assert clear(tmp_path, ["verified"]) == 20 and not (tmp_path / "verified").exists()
    assert (tmp_path / "ort-optimized").exists()
    assert clear(tmp_path) == 5002 and not (tmp_path / "ort-optimized").exists()


def test_cli_cache_shows_and_clears(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "APUCODEC_CACHE_DIR": str(tmp_path)}
    (tmp_path / "ort-optimized").mkdir()
    _entry(tmp_path / "ort-optimized", "a", 3_000_000, time.time())
    shown = subprocess.run([sys.executable, "-m", "apucodec", "cache"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "ort-optimized" in shown.stdout and "3.0 MB" in shown.stdout, shown
    data = json.loads(subprocess.run([sys.executable, "-m", "apucodec", "cache", "--json"], env=env,
                                     capture_output=True, text=True).stdout)
    assert data["kinds"]["ort-optimized"]["bytes"] == 3_000_002 and data["cap_bytes"] == 256_000_000
    cleared = subprocess.run([sys.executable, "-m", "apucodec", "cache", "--clear"], env=env, capture_output=True,
                             text=True)
    assert cleared.returncode == 0 and "3.0 MB freed" in cleared.stdout
    assert not (tmp_path / "ort-optimized").exists()
    bad = subprocess.run([sys.executable, "-m", "apucodec", "cache", "--clear", "--kind", "nope"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --kind nope")
