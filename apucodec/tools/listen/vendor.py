"""The onnxruntime-web files the page imports, shipped inside the Python package (no CDN: the page works offline).

Only what the page needs is shipped, from the npm package onnxruntime-web (version below, MIT licence, see
web/ort/NOTICE): the WebGPU bundle (its JavaScript, which also runs the WASM backend where a browser has no
WebGPU) and the WebAssembly binary that bundle loads. The binary is 28.7 MB; it is stored xz-compressed (4.0 MB,
under the repository's 5 MB warning, where gzip would be 7.1 MB) and decompressed with the standard library's
lzma when first served or exported, then checked against the sha256 of the npm package's own file.
scripts/vendor_ort_web.sh re-creates these files from `npm pack onnxruntime-web@VERSION`.
"""

from __future__ import annotations

import functools
import hashlib
import lzma
from pathlib import Path

from apucodec.errors import ApucodecError

ORT_WEB_VERSION = "1.31.1"
ORT_DIR = Path(__file__).resolve().parent / "web" / "ort"
# page route -> (file under web/ort, sha256 of the content served: npm's dist/<route name>)
FILES: dict[str, tuple[str, str]] = {
    "ort/ort.webgpu.bundle.min.mjs": (
        "ort.webgpu.bundle.min.mjs", "c90275ffcd0e74e8929f527840ce9339399bfd45f11a74887e4b81a893907b70"),
    "ort/ort-wasm-simd-threaded.asyncify.wasm": (
        "ort-wasm-simd-threaded.asyncify.wasm.xz", "ca319e9539cd0f1e291cf56074760121eaf39650f5dbf84b6e52c07f4b2944ec"),
}


@functools.cache
def ort_file(route: str) -> bytes:
    """The content of a vendored file (decompressed), verified against the npm package's sha256."""
    name, digest = FILES[route]
    path = ORT_DIR / name
    try:
        raw = path.read_bytes()
        data = lzma.decompress(raw) if name.endswith(".xz") else raw
    except (OSError, lzma.LZMAError) as exc:
        raise ApucodecError(f"{path}: cannot read the vendored onnxruntime-web file ({exc}); reinstall apucodec "
                            "or run scripts/vendor_ort_web.sh") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise ApucodecError(f"{path}: does not match onnxruntime-web {ORT_WEB_VERSION}'s file (sha256); reinstall "
                            "apucodec or run scripts/vendor_ort_web.sh")
    return data
