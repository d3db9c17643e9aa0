"""The typed manifest (apucodec/contract/manifest.py) and the passes' shared helpers (apucodec/model/passes.py).

The manifest format predates the typed classes, so the tests hold them to it: a manifest read and written back is
the same file byte for byte, keys apucodec does not know survive, and every section reads by attribute.
"""

from __future__ import annotations

import ast
import copy
import json
import shutil
from pathlib import Path

import pytest

from apucodec.contract.config import bits_per_code, codebooks_to_use
from apucodec.contract.manifest import (
    MANIFEST_NAME,
    CpuInt8Record,
    Fidelity,
    FileEntry,
    Manifest,
    Streaming,
    read_manifest,
    write_manifest,
)
from apucodec.errors import ApucodecError
from apucodec.model.directory import BUNDLED_DIR, ModelDir, file_entry
from apucodec.model.passes import StepLog, install_files, new_model_dir, staging_folder

PACKAGE = Path(__file__).resolve().parent.parent / "apucodec"


@pytest.fixture()
def bundled_manifest(tmp_path: Path) -> Path:
    path = tmp_path / MANIFEST_NAME
    shutil.copy(BUNDLED_DIR / MANIFEST_NAME, path)
    return path


def test_the_bundled_manifest_is_written_back_byte_for_byte(bundled_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.json"
    write_manifest(out, read_manifest(bundled_manifest))
    assert out.read_bytes() == bundled_manifest.read_bytes()


def test_sections_read_by_attribute(bundled_manifest: Path) -> None:
    raw = json.loads(bundled_manifest.read_text())
    manifest = read_manifest(bundled_manifest)
    assert manifest.model_id == raw["model_id"] and manifest.config.n_codebooks == raw["codec"]["n_codebooks"]
    assert manifest.streaming.encoder.delay_samples == raw["streaming"]["encoder"]["delay_samples"]
    assert manifest.streaming.stage("decoder").state_size == raw["streaming"]["decoder"]["state_size"]
    entry = manifest.files["encoder.s4"]
    assert isinstance(entry, FileEntry) and entry.is_step_graph and entry.graph_precision == "fp32"
    assert entry.graph.gflop == raw["files"]["encoder.s4"]["graph"]["gflop"]
    assert [t.name for t in entry.inputs] == ["audio", "state", "bounds"] and entry.inputs[0].shape == [1, 1, 2048]
    int8 = manifest.files["encoder.s128.npu-int8"]
    assert int8.quantization.preset == raw["files"]["encoder.s128.npu-int8"]["quantization"]["preset"]
    assert isinstance(int8.quantization.fidelity, Fidelity)
    assert int8.quantization.fidelity.latent_snr_db == \
        raw["files"]["encoder.s128.npu-int8"]["quantization"]["fidelity"]["latent_snr_db"]
    assert not manifest.files["codebooks"].is_step_graph and manifest.files["codebooks"].shape == [8, 2048, 128]
    assert manifest.export.parity.keys() == raw["export"]["parity"].keys()
    assert sorted(g.role for g in manifest.step_graphs) == [
        "decoder.s128", "decoder.s128.cpu-int8", "decoder.s4", "decoder.s4.cpu-int8", "encoder.s128",
        "encoder.s128.cpu-int8", "encoder.s128.npu-int8", "encoder.s4", "encoder.s4.cpu-int8", "encoder.s4.npu-int8"]


def test_records_are_read_by_attribute_only(bundled_manifest: Path) -> None:
    """A record is not a dict: `entry["name"]`, `entry.get(...)` and `"stage" in entry` fail at once (they used to
    work, which let the dataset read a key that exists only per file); to_dict() is the JSON, exactly."""
    raw = json.loads(bundled_manifest.read_text())
    manifest = read_manifest(bundled_manifest)
    assert manifest.streaming.to_dict() == raw["streaming"] and manifest.providers is None
    for role, entry in manifest.files.items():
        assert entry.to_dict() == raw["files"][role]
        assert entry.is_step_graph == ("stage" in raw["files"][role])
    entry = manifest.files["encoder.s4"]
    with pytest.raises(TypeError):
        entry["name"]  # noqa: B018
    with pytest.raises(TypeError):
        "stage" in entry  # noqa: B015
    assert not hasattr(entry, "get") and not hasattr(manifest, "__setitem__")
    assert not hasattr(manifest, "quantization")  # per file only: files[role].quantization


def test_unknown_keys_and_nulls_survive_a_round_trip(bundled_manifest: Path, tmp_path: Path) -> None:
    raw = json.loads(bundled_manifest.read_text())
    raw["from_the_future"] = {"a": [1, 2]}
    raw["files"]["encoder.s4"]["note"] = None
    raw["files"]["encoder.s4"]["graph"]["flops_by_op"] = {"Conv": 1.5}
    raw["streaming"]["encoder"]["jitter_ms"] = 0.5
    raw["export"]["caveats"] = None
    bundled_manifest.write_text(json.dumps(raw))
    manifest = read_manifest(bundled_manifest)
    assert manifest.extra["from_the_future"] == {"a": [1, 2]} and manifest.export.caveats is None
    assert manifest.to_dict() == raw


def test_an_assigned_record_is_written_and_read_back(bundled_manifest: Path, tmp_path: Path) -> None:
    manifest = read_manifest(bundled_manifest)
    manifest.cpu_int8 = CpuInt8Record.from_dict({"target": "CPUExecutionProvider", "step_frames": 128,
                                                 "fidelity": {"latent_snr_db": 31.5}})
    manifest.files["extra.s4"] = FileEntry(name="x.onnx", role="extra.s4", sha256="0" * 64)
    assert manifest.to_dict()["files"]["extra.s4"] == {"name": "x.onnx", "role": "extra.s4", "sha256": "0" * 64}
    write_manifest(tmp_path / "manifest.json", manifest)
    again = read_manifest(tmp_path / "manifest.json")
    assert isinstance(again.cpu_int8, CpuInt8Record) and again.cpu_int8.fidelity.latent_snr_db == 31.5
    assert isinstance(again.files["extra.s4"], FileEntry) and again.files["extra.s4"].name == "x.onnx"


def test_malformed_step_graph_entries_are_one_line(bundled_manifest: Path) -> None:
    raw = json.loads(bundled_manifest.read_text())
    del raw["files"]["decoder.s4"]["state_size"]
    raw["codec"]["mystery"] = 1
    bundled_manifest.write_text(json.dumps(raw))
    with pytest.raises(ApucodecError, match=r"manifest.json: malformed manifest \(KeyError: 'state_size'\)"):
        read_manifest(bundled_manifest)
    del raw["codec"]["mystery"]
    raw["format_version"] = 3
    bundled_manifest.write_text(json.dumps(raw))
    with pytest.raises(ApucodecError, match="format version 3 is not supported"):
        read_manifest(bundled_manifest)


def test_streaming_facts_are_computed_once() -> None:
    streaming = Streaming.compute(512, 44100, {"encoder": (1024, 10), "decoder": (700, 20)}, [64, 4])
    assert streaming.step_frames == [4, 64] and streaming.encoder.delay_frames == 2.0
    assert streaming.algorithmic_latency["4"] == {"samples": 1024 + 700 + 4 * 512,
                                                  "ms": round(1000 * (1724 + 2048) / 44100, 2)}
    assert list(streaming.to_dict()) == ["hop", "step_frames", "encoder", "decoder", "algorithmic_latency"]
    assert Streaming.from_dict(streaming.to_dict()) == streaming


def test_codebook_count_and_bits_per_code() -> None:
    assert [bits_per_code(n) for n in (2, 3, 64, 2048, 2049)] == [1, 2, 6, 11, 12]
    assert codebooks_to_use(None, 8) == 8 and codebooks_to_use(3, 8) == 3
    with pytest.raises(ApucodecError, match=r"^--codebooks must be in 1\.\.8 for this model, got 9$"):
        codebooks_to_use(9, 8)
    with pytest.raises(ApucodecError, match=r"^--codebooks must be in 1\.\.8 for this model \(m\), got 0$"):
        codebooks_to_use(0, 8, "m")


def _apucodec_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_contract_and_model_dir_import_nothing_above_them() -> None:
    """model/directory, model/checks and contract/ (and whatever of apucodec they import, transitively) stay clear of
    torch, onnx and the codec/export/calibration packages: the runtime imports them."""
    todo = ["apucodec.model.directory", "apucodec.model.checks", "apucodec.model.passes",
            *(f"apucodec.contract.{p.stem}" for p in (PACKAGE / "contract").glob("*.py") if p.stem != "__init__")]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        file = PACKAGE.parent / (module.replace(".", "/") + ".py")
        if not file.is_file():
            file = file.with_suffix("") / "__init__.py"
        for imported in _apucodec_imports(file):
            top = imported.split(".")[0]
            assert top not in ("torch", "onnx", "onnxruntime"), f"{module} imports {imported}"
            assert not imported.startswith(("apucodec.codec", "apucodec.export", "apucodec.calibration")), \
                f"{module} imports {imported}"
            if top == "apucodec":
                todo.append(imported)
    assert "apucodec.contract.manifest" in seen


def test_step_log_lines_and_times() -> None:
    lines: list[str] = []
    log = StepLog(lines.append, "export")
    with log.step("fold") as said:
        said.append("3 tensors")
    with log.timed("quiet"):
        pass
    log.info("done")
    assert lines[0].startswith("[export] fold: 3 tensors (") and lines[1] == "[export] done" and len(lines) == 2
    assert set(log.seconds) == {"fold", "quiet"}
    bare: list[str] = []
    StepLog(bare.append).info("collecting clips")
    assert bare == ["collecting clips"]


def test_staging_is_removed_whatever_happens(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staging_folder(tmp_path, ".x-", tmp_path, "write") as folder:
        (folder / "half.onnx").write_bytes(b"1")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "model"
    with pytest.raises(RuntimeError), new_model_dir(out, force=False) as stage:
        (stage / "manifest.json").write_text("{}")
        raise RuntimeError("export failed")
    assert list(tmp_path.iterdir()) == []
    with new_model_dir(out, force=False) as stage:
        (stage / "manifest.json").write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (out / "manifest.json").is_file()
    with pytest.raises(ApucodecError, match="folder exists and is not empty; pass --force"), \
            new_model_dir(out, force=False):
        pass


def test_install_files_is_all_or_nothing(bundled_manifest: Path, tmp_path: Path, monkeypatch) -> None:
    model = ModelDir(tmp_path, read_manifest(bundled_manifest))
    (tmp_path / "encoder.s128.npu-int8.onnx").write_bytes(b"old")
    before_manifest, before_text = copy.deepcopy(model.manifest), bundled_manifest.read_text()
    manifest = model.manifest
    with staging_folder(tmp_path, ".q-", tmp_path, "write") as work:
        staged = work / "new.onnx"
        staged.write_bytes(b"new")

        def record(targets: dict[str, Path]) -> None:
            model.files["encoder.s128.npu-int8"] = file_entry(targets["encoder.s128.npu-int8"],
                                                              "encoder.s128.npu-int8", precision="npu-int8")

        def disk_full(self: ModelDir) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ModelDir, "save_manifest", disk_full)
        with pytest.raises(ApucodecError, match="cannot write the model directory .No space left on device.; it "
                                                "was left as it was"):
            install_files(model, {"encoder.s128.npu-int8": (staged, "encoder.s128.npu-int8.onnx")}, record)
        assert (tmp_path / "encoder.s128.npu-int8.onnx").read_bytes() == b"old"
        assert model.manifest is manifest and model.manifest == before_manifest
        assert bundled_manifest.read_text() == before_text
        monkeypatch.undo()
        staged.write_bytes(b"new")  # a failed install discards what it moved in
        install_files(model, {"encoder.s128.npu-int8": (staged, "encoder.s128.npu-int8.onnx")}, record)
    assert (tmp_path / "encoder.s128.npu-int8.onnx").read_bytes() == b"new"
    written = json.loads(bundled_manifest.read_text())["files"]["encoder.s128.npu-int8"]
    assert written["bytes"] == 3 and written["precision"] == "npu-int8"
    assert isinstance(Manifest.from_dict(json.loads(bundled_manifest.read_text())), Manifest)
