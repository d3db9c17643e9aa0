"""A battery of bad and hostile inputs through the CLI, in-process (click's CliRunner).

Every case asserts the same contract: a non-zero exit, exactly one stderr line that names the file (or option) and
the problem, no traceback, nothing new on disk in the output folder, and every input byte-for-byte unchanged.
Signals, resource limits, full filesystems and memory are in test_cli_as_a_process.py (they need a subprocess).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.contract.config import bits_per_code as bits_for
from apucodec.io.apc_header import HEADER_V1 as HEADER
from apucodec.io.apc_header import MAGIC
from apucodec.io.apc_writer import BitPacker
from apucodec.model.directory import sha256_file
from tests.audio_factory import speech_like, tone
from tests.cli_helpers import CPU
from tests.refusal_helpers import digest, listing


class Scene:
    """A folder of inputs and a model; `refused` runs one case and checks the whole contract."""

    def __init__(self, root: Path, model: Path) -> None:
        self.root, self.model = root, model
        self.out = root / "out"
        self.out.mkdir()
        self.count = 0

    def refused(self, args: list[str], *fragments: str, stdin: bytes | None = None, model: Path | None = None,
                add_model: bool = True, exit_code: int = 1) -> str:
        watched = [p for p in self.root.rglob("*") if p.is_file() and not p.is_symlink()]
        before = {p: digest(p) for p in watched}
        out_before = listing(self.out)
        extra = ["--model", str(model or self.model)] if add_model else []
        result = CliRunner().invoke(cli, [*args, *extra], input=stdin, catch_exceptions=False)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == exit_code, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert "Traceback" not in result.output and "Traceback" not in result.stderr
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        assert listing(self.out) == out_before, (args, listing(self.out))
        assert {p: digest(p) for p in watched} == before, f"an input changed: {args}"
        self.count += 1
        return lines[0]


@pytest.fixture(scope="module")
def scene(tmp_path_factory, runtime_model) -> Scene:
    root = tmp_path_factory.mktemp("refusals")
    s = Scene(root, runtime_model)
    sf.write(root / "in.wav", speech_like(2.0) + 0.3 * tone(2.0, 220.0), 44100)
    result = CliRunner().invoke(cli, ["encode", str(root / "in.wav"), str(root / "good.apc"), *CPU, "--model",
                                      str(runtime_model)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return s


def _model_id(model: Path) -> str:
    return json.loads((model / "manifest.json").read_text())["model_id"]


def apc(model_id: str, *, frames: int = 10, n: int = 4, codebook_size: int = 64, sample_rate: int = 44100,
        input_rate: int = 44100, hop: int = 512, original_length: int | None = None, input_length: int | None = None,
        version: int = 1, bits: int | None = None, payload: bytes | None = None, raw_id: bytes | None = None) -> bytes:
    """An .apc with any header fields (valid CRC), codes drawn at random unless `payload` is given."""
    original_length = frames * hop - 3 if original_length is None else original_length
    input_length = round(original_length * input_rate / sample_rate) if input_length is None else input_length
    if payload is None:
        codes = np.random.default_rng(0).integers(0, codebook_size, size=(frames, n))
        packer = BitPacker(bits_for(codebook_size))
        payload = packer.pack(codes) + packer.flush()
    body = HEADER.pack(MAGIC, version, 72, sample_rate, input_rate, n, bits or bits_for(codebook_size), 0,
                       codebook_size, hop, frames, original_length,
                       raw_id if raw_id is not None else model_id.encode().ljust(16, b"\0"), input_length, 0) + payload
    return body + struct.pack("<I", zlib.crc32(body))


# ---- audio inputs ----------------------------------------------------------------------------------------------------

def test_bad_audio_inputs(scene):
    root, out = scene.root, scene.out
    (root / "zero.wav").write_bytes(b"")
    sf.write(root / "empty.wav", np.zeros(0, dtype=np.float32), 44100)
    (root / "garbage.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    (root / "text.flac").write_text("this is not audio\n" * 50)
    for name, bad in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        audio = tone(1.0)
        audio[7000] = bad
        sf.write(root / name, audio, 44100, subtype="FLOAT")
    cases = [
        (["run", str(root / "missing.wav"), str(out / "o.wav")], ["missing.wav", "no such file"]),
        (["run", str(root), str(out / "o.wav")], ["is a directory"]),
        (["run", str(root / "zero.wav"), str(out / "o.wav")], ["zero.wav", "not readable audio"]),
        (["run", str(root / "empty.wav"), str(out / "o.wav")], ["empty.wav", "no audio samples"]),
        (["encode", str(root / "garbage.wav"), str(out / "g.apc")], ["garbage.wav", "not readable audio"]),
        (["run", str(root / "text.flac"), str(out / "o.wav")], ["text.flac", "not readable audio"]),
        (["run", str(root / "nan.wav"), str(out / "o.wav")], ["nan.wav", "NaN or infinite"]),
        (["encode", str(root / "inf.wav"), str(out / "o.apc")], ["inf.wav", "NaN or infinite"]),
        (["run", str(root / "good.apc"), str(out / "o.wav")], ["good.apc", "not readable audio"]),
    ]
    for args, fragments in cases:
        scene.refused([*args, *CPU], *fragments)


def test_stdin_inputs(scene):
    out = scene.out
    scene.refused(["run", "-", str(out / "o.wav"), *CPU], "<stdin>", "not readable audio", stdin=b"junk" * 100)
    scene.refused(["run", "-", str(out / "o.wav"), *CPU], "<stdin>", "not readable audio", stdin=b"")
    scene.refused(["decode", "-", str(out / "o.wav"), *CPU], "<stdin>", "not a valid .apc",
                  stdin=(scene.root / "good.apc").read_bytes()[:-9])
    scene.refused(["decode", "-", str(out / "o.wav"), *CPU], "<stdin>", "empty", stdin=b"")


# ---- outputs ---------------------------------------------------------------------------------------------------------

def test_bad_outputs(scene):
    root, out = scene.root, scene.out
    src = str(root / "in.wav")
    (root / "hardlink.wav").unlink(missing_ok=True)
    os.link(root / "in.wav", root / "hardlink.wav")
    os.link(root / "good.apc", root / "apclink.wav")
    link = out / "link.wav"
    sock_path = out / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    with contextlib.suppress(PermissionError):  # a private block device node, never opened (needs CAP_MKNOD)
        os.mknod(out / "blockdev", 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    os.symlink(root / "in.wav", link)
    try:
        cases = [
            (["run", src, str(out / "missing" / "o.wav")], ["does not exist"]),
            (["run", src, str(out)], ["is a directory"]),
            (["run", src, str(out / "o.xyz")], ["o.xyz", "unknown output extension", ".flac"]),
            (["run", src, str(out / "o.apc")], ["o.apc", "apucodec encode"]),
            (["encode", src, str(out / "o.wav")], ["o.wav", "apucodec run"]),
            (["run", src, src], ["output is the input"]),
            (["run", src, str(root / "hardlink.wav")], ["hardlink.wav", "output is the input"]),
            (["run", src, str(link)], ["link.wav", "output is the input"]),
            (["decode", str(root / "good.apc"), str(root / "apclink.wav")], ["apclink.wav", "output is the input"]),
            (["decode", str(root / "good.apc"), str(out / "o.apc")], ["o.apc", "apucodec encode"]),
            (["run", src, str(sock_path)], ["sock", "socket"]),
        ]
        if (out / "blockdev").exists():
            cases.append((["run", src, str(out / "blockdev")], ["blockdev", "block device"]))
        for args, fragments in cases:
            scene.refused([*args, *CPU], *fragments)
        assert not (out / "blockdev").exists() or os.stat(out / "blockdev").st_rdev == os.makedev(7, 200)
    finally:
        sock.close()
        for p in (sock_path, out / "blockdev", link):
            p.unlink(missing_ok=True)
        (root / "hardlink.wav").unlink()
        (root / "apclink.wav").unlink()


# ---- options ---------------------------------------------------------------------------------------------------------

def test_bad_options_fail_before_sessions_open(scene, monkeypatch):
    import apucodec.runtime.codec_runner as pipeline

    def no_sessions(*args, **kwargs):
        raise AssertionError("sessions were opened before the option was checked")

    monkeypatch.setattr(pipeline, "open_sessions", no_sessions)
    src, out = str(scene.root / "in.wav"), scene.out
    scene.refused(["run", src, str(out / "o.wav"), "--codebooks", "5", *CPU], "--codebooks must be in 1..4")
    scene.refused(["encode", src, str(out / "o.apc"), "--codebooks", "64", *CPU], "--codebooks must be in 1..4")
    scene.refused(["run", src, str(out / "o.wav"), "--decoder-ep", "gpu"], "unknown execution provider")
    scene.refused(["run", src, str(out / "o.wav"), "--ep-option", "vitisai-target", *CPU], "EP:KEY=VALUE")


def test_help_lists_only_the_commands_own_stage():
    encode_help = CliRunner().invoke(cli, ["encode", "--help"]).output
    decode_help = CliRunner().invoke(cli, ["decode", "--help"]).output
    run_help = CliRunner().invoke(cli, ["run", "--help"]).output
    assert "--encoder-ep" in encode_help and "--decoder-ep" not in encode_help
    assert "--decoder-ep" in decode_help and "--encoder-ep" not in decode_help and "--encoder " not in decode_help
    assert "--encoder-ep" in run_help and "--decoder-ep" in run_help
    assert "1..64" not in run_help + encode_help and "1..N" in run_help


# ---- .apc files ------------------------------------------------------------------------------------------------------

def test_hostile_apc_files(scene):
    root, out, mid = scene.root, scene.out, _model_id(scene.model)
    good = (root / "good.apc").read_bytes()
    flipped_payload = bytearray(good)
    flipped_payload[len(good) - 20] ^= 0x24
    flipped_header = bytearray(good)
    flipped_header[9] ^= 0x01  # sample rate, CRC left as it was
    files = {
        "cut.apc": (good[: len(good) // 2], ["payload is"]),
        "payload_flip.apc": (bytes(flipped_payload), ["CRC32 mismatch"]),
        "header_flip.apc": (bytes(flipped_header), ["not a valid .apc file"]),
        "trailing.apc": (good + b"\0" * 7, ["payload is"]),
        "empty.apc": (b"", ["is empty"]),
        "short.apc": (good[:30], ["truncated"]),
        "wav.apc": ((root / "in.wav").read_bytes()[:4000], ["wrong magic"]),
        "version.apc": (apc(mid, version=9), ["format version 9"]),
        "input_bomb.apc": (apc(mid, input_length=2**62), ["recorded input length"]),
        "input_bomb48.apc": (apc(mid, input_rate=48000, input_length=10**12), ["recorded input length"]),
        "frames_bomb.apc": (apc(mid, frames=2**40, original_length=2**40 * 512, payload=b"\0" * 30), ["payload is"]),
        "length_lie.apc": (apc(mid, original_length=10**9), ["frames do not cover"]),
        "zero_codebooks.apc": (apc(mid, n=0, payload=b""), ["0 codebooks"]),
        "many_codebooks.apc": (apc(mid, n=200), ["200 codebooks"]),
        "zero_rate.apc": (apc(mid, sample_rate=0, input_rate=0, input_length=1), ["impossible sample rate"]),
        "zero_hop.apc": (apc(mid, hop=0, original_length=5), ["frames do not cover"]),
        "bits.apc": (apc(mid, bits=3), ["bits per code"]),
        "id.apc": (apc(mid, raw_id=b"\xff" * 16), ["model id is not ASCII"]),
        "other_size.apc": (apc(mid, codebook_size=2048), ["codebooks of 2048"]),
        "eight.apc": (apc(mid, n=8), ["uses 8 codebooks"]),
        "other_rate.apc": (apc(mid, sample_rate=48000, input_rate=48000), ["48000 Hz"]),
        "other_model.apc": (apc("feedfacefeedface"), ["made by model feedfacefeedface", "--force"]),
    }
    for name, (data, fragments) in files.items():
        (root / name).write_bytes(data)
        args = ["decode", str(root / name), str(out / "o.wav"), *CPU]
        if "bomb" in name:
            args.append("--match-input")
        scene.refused(args, name, *fragments)


# ---- model directories -----------------------------------------------------------------------------------------------

def _variant(scene: Scene, name: str, edit=None, files: dict[str, bytes] | None = None) -> Path:
    """A copy of the model with files replaced/added and the manifest edited (sha256 entries kept consistent)."""
    model = scene.root / "models" / name
    shutil.copytree(scene.model, model)
    for file_name, data in (files or {}).items():
        (model / file_name).write_bytes(data)
    manifest = json.loads((model / "manifest.json").read_text())
    for entry in manifest["files"].values():
        path = model / entry["name"]
        if entry["name"] in (files or {}) and path.is_file():
            entry["sha256"] = sha256_file(path)
    if edit is not None:
        edit(manifest)
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_hostile_model_directories(scene):
    root, out = scene.root, scene.out
    (root / "models").mkdir(exist_ok=True)
    outside = root / "outside.npy"
    shutil.copy(scene.model / "codebooks.npy", outside)
    shape = np.load(scene.model / "codebooks.npy").shape

    def rename(role, name, sha=None):
        def edit(m):
            m["files"][role]["name"] = name
            if sha:
                m["files"][role]["sha256"] = sha
        return edit

    def codec(**values):
        return lambda m: m["codec"].update(values)

    def symlinked(name):
        model = _variant(scene, name)
        (model / "codebooks.npy").unlink()
        os.symlink(outside, model / "codebooks.npy")
        return model

    huge = (shape[0], 1 << 24, 1 << 16)  # 4 x 16M x 64K float32: a 16 TiB promise in a 228-byte file
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": huge})
    bomb = header.getvalue() + bytes(100)
    variants = {
        "dotdot": (_variant(scene, "dotdot", rename("codebooks", "../../outside.npy", sha256_file(outside))),
                   ["not a plain file name"]),
        "absolute": (_variant(scene, "absolute", rename("codebooks", "/etc/passwd", sha256_file("/etc/passwd"))),
                     ["'/etc/passwd'", "not a plain file name"]),
        "subdir": (_variant(scene, "subdir", rename("decoder.s8", "sub/decoder.s8.onnx")), ["not a plain file name"]),
        "dot": (_variant(scene, "dot", rename("decoder.s8", ".")), ["not a plain file name"]),
        "symlink": (symlinked("symlink"), ["points outside the model directory"]),
        "text_npy": (_variant(scene, "text_npy", files={"codebooks.npy": b"0.1 0.2 0.3\n" * 100}),
                     ["codebooks.npy", "not a NumPy .npy array"]),
        "pickle_npy": (_variant(scene, "pickle_npy", files={"codebooks.npy": _npy(np.array([{"a": 1}, None],
                                                                                              dtype=object), True)}),
                       ["codebooks.npy", "pickled Python objects"]),
        "int_npy": (_variant(scene, "int_npy", files={"codebooks.npy": _npy(np.zeros(shape, dtype=np.int64))}),
                    ["codebooks.npy", "float32 or float16"]),
        "shape_npy": (_variant(scene, "shape_npy", files={"codebooks.npy": _npy(np.zeros((2, 3), np.float32))}),
                      ["codebooks.npy", "does not match the manifest"]),
        "nan_npy": (_variant(scene, "nan_npy", files={"codebooks.npy": _npy(np.full(shape, np.nan, np.float32))}),
                    ["codebooks.npy", "NaN or infinite"]),
        "bomb_npy": (_variant(scene, "bomb_npy", codec(codebook_size=huge[1], latent_dim=huge[2]),
                              files={"codebooks.npy": bomb}), ["codebooks.npy", "not a NumPy .npy array"]),
        "rate0": (_variant(scene, "rate0", codec(sample_rate=0)), ["codec.sample_rate", "got 0"]),
        "rate_text": (_variant(scene, "rate_text", codec(sample_rate="44100")), ["codec.sample_rate"]),
        "codebooks0": (_variant(scene, "codebooks0", codec(n_codebooks=0)), ["codec.n_codebooks"]),
        "size1": (_variant(scene, "size1", codec(codebook_size=1)), ["codec.codebook_size"]),
        "hop0": (_variant(scene, "hop0", lambda m: m["streaming"].update(hop=0)), ["streaming.hop"]),
        "files_list": (_variant(scene, "files_list", lambda m: m.update(files=[1, 2])), ["'files' must be"]),
    }
    src = str(root / "in.wav")
    for model, fragments in variants.values():
        scene.refused(["run", src, str(out / "o.wav"), *CPU], *fragments, model=model)
    for name in ("dotdot", "absolute", "symlink", "pickle_npy", "rate0"):  # doctor --model: the same checks
        model, fragments = variants[name]
        scene.refused(["doctor", "--model", str(model)], *fragments, add_model=False)


def test_onnx_external_data_is_refused(scene):
    onnx = pytest.importorskip("onnx")
    model = _variant(scene, "external")
    proto = onnx.load(str(model / "decoder.s8.onnx"))
    onnx.save_model(proto, str(model / "decoder.s8.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"]["decoder.s8"]["sha256"] = sha256_file(model / "decoder.s8.onnx")
    (model / "manifest.json").write_text(json.dumps(manifest))
    src = str(scene.root / "in.wav")
    scene.refused(["run", src, str(scene.out / "o.wav"), *CPU], "decoder.s8.onnx", "external data", model=model)
    scene.refused(["doctor", "--model", str(model)], "decoder.s8.onnx", "external data", add_model=False)


def test_checkpoint_with_nan_weights_says_so(scene, tiny_checkpoint):
    torch = pytest.importorskip("torch")

    data = torch.load(tiny_checkpoint, weights_only=True)
    key = next(k for k, v in data["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    data["state_dict"][key] = data["state_dict"][key].clone()
    data["state_dict"][key].view(-1)[0] = float("nan")
    bad = scene.root / "nan.pt"
    torch.save(data, bad)
    target = scene.out / "exported"
    scene.refused(["export", "--checkpoint", str(bad), "--out", str(target)], "nan.pt", "NaN or infinite", key,
                  add_model=False)
    assert not target.exists()
