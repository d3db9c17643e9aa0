"""Every resource of the listening page by route (a path relative to the page), for the server and the export.

Routes are matched whole against a fixed table; no part of a request path is ever joined onto a filesystem path.
A model file is served only when its name is one the manifest lists for the browser's decode (the FP32 decoder
step graphs, their external weight files, the codebooks), an input only by its index in the list given on the
command line. Anything else, `..` in any spelling included, matches no route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.tools.listen import images, vendor
from apucodec.tools.listen.inputs import Inputs, Prepared, wav_bytes

WEB_DIR = Path(__file__).resolve().parent / "web"
PAGE_FILES = {"index.html": "text/html; charset=utf-8", "listen.js": "text/javascript; charset=utf-8",
              "decode.js": "text/javascript; charset=utf-8", "apc.js": "text/javascript; charset=utf-8",
              "listen.css": "text/css; charset=utf-8"}
TYPES = {".json": "application/json", ".apc": "application/octet-stream", ".wav": "audio/wav",
         ".f32": "application/octet-stream", ".png": "image/png", ".onnx": "application/octet-stream",
         ".npy": "application/octet-stream", ".mjs": "text/javascript; charset=utf-8", ".wasm": "application/wasm"}
INPUT_ROUTE = re.compile(r"input/(0|[1-9][0-9]{0,5})/(info\.json|codes\.apc|original\.wav|original-wave\.png|"
                         r"original-spec(-low)?\.png|decoded-([1-9][0-9]?)(\.wav|\.f32|-wave\.png|-spec\.png|"
                         r"-spec-low\.png)|diff-([1-9][0-9]?)(-low)?\.png)")

Resource = tuple[bytes, str]


def external_data_names(entry: dict[str, Any]) -> list[str]:
    """Weight files a step graph loads as ONNX external data, as its manifest entry names them (none: [])."""
    value = entry.get("external_data", entry.get("weights"))
    items = value if isinstance(value, list) else [value] if value else []
    names = [item.get("name") if isinstance(item, dict) else item for item in items]
    return [n for n in names if isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..")]


def browser_model_files(manifest: dict[str, Any]) -> list[str]:
    """The model files the browser fetches: FP32 decoder step graphs (with their weights) and the codebooks."""
    names = []
    for entry in manifest.get("files", {}).values():
        if entry.get("role") == "codebooks" or (entry.get("stage") == "decoder"
                                                and entry.get("precision") == "fp32"):
            names.append(entry["name"])
            names.extend(external_data_names(entry))
    return [n for n in dict.fromkeys(names) if "/" not in n and "\\" not in n and n not in (".", "..")]


class Site:
    """The page's resources: page assets, vendored onnxruntime-web, the model's browser files, the inputs."""

    def __init__(self, inputs: Inputs, model_dir: Path, hop: int, bits_per_code: int) -> None:
        self.inputs, self.model_dir = inputs, model_dir
        self.hop, self.bits = hop, bits_per_code
        self.manifest_bytes = (model_dir / "manifest.json").read_bytes()
        self.model_files = browser_model_files(json.loads(self.manifest_bytes))

    def routes(self) -> list[str]:
        """Every route the page may fetch (what `--export` writes)."""
        out = [*PAGE_FILES, *vendor.FILES, "inputs.json", "model/manifest.json"]
        out += [f"model/{name}" for name in self.model_files]
        for index in range(len(self.inputs)):
            prepared = self.inputs.get(index)
            base = f"input/{index}/"
            out += [base + "info.json", base + "codes.apc"]
            if prepared.original is not None:
                out += [base + "original.wav", base + "original-wave.png", base + "original-spec.png",
                        base + "original-spec-low.png"]
            for n in prepared.decoded:
                out += [f"{base}decoded-{n}{kind}" for kind in (".wav", ".f32", "-wave.png", "-spec.png",
                                                                "-spec-low.png")]
                if prepared.original is not None:
                    out += [f"{base}diff-{n}.png", f"{base}diff-{n}-low.png"]
        return out

    def resource(self, route: str) -> Resource | None:
        """The bytes and content type at `route`, or None where there is no such resource."""
        if route in ("", "index.html"):
            route = "index.html"
        if route in PAGE_FILES:
            return (WEB_DIR / route).read_bytes(), PAGE_FILES[route]
        if route in vendor.FILES:
            return vendor.ort_file(route), _type(route)
        if route == "inputs.json":
            listing = [{"index": i, "name": s.name, "kind": "apc" if s.is_apc else "audio"}
                       for i, s in enumerate(self.inputs.sources)]
            return _json({"inputs": listing, "model_files": self.model_files}), TYPES[".json"]
        if route == "model/manifest.json":
            return self.manifest_bytes, TYPES[".json"]
        if route.startswith("model/") and route[len("model/"):] in self.model_files:
            path = self.model_dir / route[len("model/"):]
            return (path.read_bytes(), _type(route)) if path.is_file() else None
        match = INPUT_ROUTE.fullmatch(route)
        if match is None or int(match.group(1)) >= len(self.inputs):
            return None
        return self._input(self.inputs.get(int(match.group(1))), match.group(2), match)

    def _input(self, p: Prepared, name: str, match: re.Match[str]) -> Resource | None:
        n = int(match.group(4) or match.group(6) or 0)
        if n and n not in p.decoded:
            return None
        if (name.startswith("diff-") or name.startswith("original")) and p.original is None:
            return None
        makers: dict[str, Callable[[], bytes]] = {
            "info.json": lambda: _json(p.summary(self.bits, self.hop)),
            "codes.apc": lambda: p.apc,
            "original.wav": lambda: wav_bytes(p.original, p.sample_rate),
            "original-wave.png": lambda: images.waveform_png(p.original),
            "original-spec.png": lambda: images.spectrogram_png(p.original, p.top_db),
            "original-spec-low.png": lambda: images.spectrogram_png(p.original, p.top_db, low=True),
        }
        if n:
            decoded = p.decoded[n]
            makers.update({
                f"decoded-{n}.wav": lambda: wav_bytes(decoded, p.sample_rate),
                f"decoded-{n}.f32": lambda: np.asarray(decoded, dtype="<f4").tobytes(),
                f"decoded-{n}-wave.png": lambda: images.waveform_png(decoded),
                f"decoded-{n}-spec.png": lambda: images.spectrogram_png(decoded, p.top_db),
                f"decoded-{n}-spec-low.png": lambda: images.spectrogram_png(decoded, p.top_db, low=True),
                f"diff-{n}.png": lambda: images.difference_png(p.original, decoded, p.top_db),
                f"diff-{n}-low.png": lambda: images.difference_png(p.original, decoded, p.top_db, low=True),
            })
        make = makers.get(name)
        return (make(), _type(name)) if make is not None else None


def _type(route: str) -> str:
    return TYPES.get(Path(route).suffix, "application/octet-stream")


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, default=_finite).encode()


def _finite(value: Any) -> Any:
    raise TypeError(f"not JSON: {value!r}")
