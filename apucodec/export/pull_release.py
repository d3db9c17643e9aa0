"""`apucodec pull NAME`: an official release file -> a checked download -> an exported model directory, by name.

The steps: look the name up (apucodec/model/registry.py), fetch the file into the user cache and check its sha256
(apucodec/model/download.py), export it with the one export pipeline (apucodec.export.export_model, which
recognises the checkpoint's family), into cache_root()/models/NAME. From then on `--model NAME` and
`apucodec.load("NAME")` open it (apucodec/model/location.py). The manifest's export.source records where the
weights came from: the URL, the file's sha256 and how it was trusted. Pulling again is a no-op while the model
directory was made from the same file; `force` exports again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError, require
from apucodec.model.directory import ModelDir, load_model_dir
from apucodec.model.download import Downloaded, fetch, recorded_sha256
from apucodec.model.registry import Release, lookup, pulled_dir

Log = Callable[[str], None]

TRUST_TEXT = {
    "pinned": "sha256 matches the hash pinned in apucodec",
    "prefix": "sha256 starts with the prefix its publisher embeds in the file name; the full sha256 was recorded "
              "on this first download (trust on first use)",
    "first-use": "no published sha256: the sha256 of this first download was recorded (trust on first use); later "
                 "downloads must match it",
    "recorded": "sha256 matches the one recorded at its first download (trust on first use)",
}


@dataclass
class PullResult:
    name: str
    model: ModelDir
    download: Downloaded | None
    exported: bool

    def lines(self) -> list[str]:
        source = (self.model.manifest.export.source or {}).get("pulled", {}) if self.model.manifest.export else {}
        trust = TRUST_TEXT.get(str(source.get("trust")), "")
        verb = "pulled" if self.exported else "already pulled"
        return [f"{verb} {self.name}: {self.model.path} (model {self.model.model_id}) from {source.get('url')}; "
                f"{trust}",
                f"use it with --model {self.name} or apucodec.load({self.name!r})"]


def pulled_source(model: ModelDir) -> dict[str, Any]:
    """The manifest's record of the release a pulled model was made from ({} if none)."""
    source = model.manifest.export.source if model.manifest.export else None
    pulled = (source or {}).get("pulled")
    return pulled if isinstance(pulled, dict) else {}


def _current(release: Release, target: Path) -> ModelDir | None:
    """The pulled model directory, if it exists, checks out and was made from the file this release names."""
    if not target.is_dir():
        return None
    try:
        model = load_model_dir(target)
    except ApucodecError:
        return None
    source = pulled_source(model)
    expected = release.sha256 or recorded_sha256(release)
    if source.get("url") != release.url or not expected or source.get("sha256") != expected:
        return None
    return model


def pull(name: str, *, force: bool = False, log: Log | None = None,
         export_options: dict[str, Any] | None = None) -> PullResult:
    """Download, check and export the release called `name` into the user cache; return the model directory."""
    release = lookup(name)
    target = pulled_dir(name)
    if not force and (model := _current(release, target)) is not None:
        return PullResult(name, model, None, exported=False)
    require("torch", "export")  # exporting the checkpoint needs the export extra: said before downloading
    require("onnx", "export")
    downloaded = fetch(release, log=log)
    from apucodec.export import export_model

    model = export_model(downloaded.path, target, force=True, log=log, **(export_options or {}))
    record = model.manifest.export
    if record is not None:
        record.source = {**(record.source or {}),
                         "pulled": {"name": name, "url": release.url, "sha256": downloaded.sha256,
                                    "bytes": downloaded.bytes, "trust": downloaded.trust}}
        model.save_manifest()
    return PullResult(name, model, downloaded, exported=True)
