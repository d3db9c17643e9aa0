"""Model directory file checks: only plain file names, and ONNX external data found anywhere a tensor can be."""

from __future__ import annotations

from pathlib import Path

import pytest

from apucodec.contract.manifest_checks import check_entry_name
from apucodec.errors import ApucodecError
from apucodec.model.checks import check_no_external_data


@pytest.mark.parametrize("name", ["../x.npy", "/etc/passwd", "sub/x.npy", "a\\b.npy", ".", "..", "", "x\0y", 5, None])
def test_only_plain_file_names(name):
    with pytest.raises(ApucodecError, match="files.codebooks.name"):
        check_entry_name(name, "codebooks", Path("m/manifest.json"))
    assert check_entry_name("codebooks.npy", "codebooks", Path("m/manifest.json")) == "codebooks.npy"


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_external_data_is_found_anywhere_a_tensor_can_be(tmp_path):
    tensor_external = _field(13, _field(1, b"location") + _field(2, b"w.bin"))
    tensor_location = bytes([14 << 3, 1])  # data_location = EXTERNAL
    plain_tensor = _field(9, b"\0" * 8)  # raw_data only
    initializer = _field(7, _field(5, tensor_external))  # model.graph.initializer
    in_attribute = _field(7, _field(1, _field(5, _field(5, tensor_location))))  # graph.node.attribute.t
    in_subgraph = _field(7, _field(1, _field(5, _field(6, _field(5, tensor_external)))))  # attribute.g.initializer
    for name, data in {"initializer": initializer, "attribute": in_attribute, "subgraph": in_subgraph}.items():
        with pytest.raises(ApucodecError, match="external data"):
            check_no_external_data(_written(tmp_path / f"{name}.onnx", data))
    check_no_external_data(_written(tmp_path / "plain.onnx", _field(7, _field(5, plain_tensor))))  # accepted
    with pytest.raises(ApucodecError, match="not an ONNX model"):
        check_no_external_data(_written(tmp_path / "short.onnx", b"\x3a\x7f"))  # a field longer than the file


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
