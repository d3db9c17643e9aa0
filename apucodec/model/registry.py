"""The official release files `apucodec pull NAME` knows, and where a pulled model lives.

Each name maps to one file published by the codec's authors (MIT-licensed weights): DAC's GitHub releases and
EnCodec's file on Meta's download server. What is pinned is what could be established from the publishers
themselves. EnCodec's file name embeds the first 8 hex digits of its sha256, which the `encodec` package checks on
download (torch.hub's check_hash): that prefix is pinned. DAC publishes no hash: its full sha256 is recorded from
the first download (trust on first use; apucodec/model/download.py says where, and `pull` says so when it happens).

$APUCODEC_REGISTRY names a JSON file that replaces this table, for a mirror, an internal release or a test:
{"models": {"NAME": {"url": ..., "file_name": ..., "sha256": ... | null, "sha256_prefix": ... | null,
"family": ..., "description": ...}}}. Standard library only: the runtime resolves names through it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.model.user_cache import cache_root

REGISTRY_ENV = "APUCODEC_REGISTRY"
MODELS_SUBDIR = "models"        # cache_root()/models/NAME: a pulled model's directory
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HEX = re.compile(r"^[0-9a-f]+$")

DAC_RELEASES = "https://github.com/descriptinc/descript-audio-codec/releases/download"


@dataclass(frozen=True)
class Release:
    """One official release file: where it is, what it must hash to (fully, by prefix, or first use)."""

    name: str
    url: str
    file_name: str
    family: str
    description: str
    sha256: str | None = None
    sha256_prefix: str | None = None

    @property
    def trust(self) -> str:
        """How the download is checked: 'pinned' (full sha256), 'prefix' (+ first use), 'first-use'."""
        return "pinned" if self.sha256 else "prefix" if self.sha256_prefix else "first-use"


BUILTIN: dict[str, Release] = {r.name: r for r in (
    Release("dac-44khz", f"{DAC_RELEASES}/0.0.1/weights.pth", "dac-44khz-0.0.1-weights.pth", "dac",
            "DAC 44.1 kHz, 8 kbps (9 codebooks), release 0.0.1"),
    Release("dac-24khz", f"{DAC_RELEASES}/0.0.4/weights_24khz.pth", "dac-24khz-0.0.4-weights_24khz.pth", "dac",
            "DAC 24 kHz, release 0.0.4"),
    Release("dac-16khz", f"{DAC_RELEASES}/0.0.5/weights_16khz.pth", "dac-16khz-0.0.5-weights_16khz.pth", "dac",
            "DAC 16 kHz, release 0.0.5"),
    Release("encodec-24khz", "https://dl.fbaipublicfiles.com/encodec/v0/encodec_24khz-d7cc33bc.th",
            "encodec_24khz-d7cc33bc.th", "encodec", "EnCodec 24 kHz, 1.5-24 kbps (up to 32 codebooks)",
            sha256_prefix="d7cc33bc"),
)}


def _release(name: str, data: object, where: str) -> Release:
    if not isinstance(data, dict):
        raise ApucodecError(f"{where}: models.{name} must be a mapping")
    fields = {k: data.get(k) for k in ("url", "file_name", "family", "description", "sha256", "sha256_prefix")}
    for key in ("url", "file_name"):
        if not isinstance(fields[key], str) or not fields[key]:
            raise ApucodecError(f"{where}: models.{name}.{key} must be a non-empty string")
    if not str(fields["url"]).startswith(("https://", "http://")):
        raise ApucodecError(f"{where}: models.{name}.url must be an http(s) URL")
    file_name = str(fields["file_name"])
    if "/" in file_name or "\\" in file_name or file_name.startswith(".") or "\0" in file_name:
        raise ApucodecError(f"{where}: models.{name}.file_name must be a plain file name")
    for key, length in (("sha256", 64), ("sha256_prefix", None)):
        value = fields[key]
        if value is not None and (not isinstance(value, str) or not _HEX.match(value)
                                  or (length and len(value) != length) or len(value) > 64):
            raise ApucodecError(f"{where}: models.{name}.{key} must be lowercase hex"
                                + (f" of {length} digits" if length else ""))
    return Release(name, str(fields["url"]), file_name, str(fields["family"] or ""),
                   str(fields["description"] or ""), fields["sha256"], fields["sha256_prefix"])  # type: ignore[arg-type]


def releases() -> dict[str, Release]:
    """The built-in table, or the one $APUCODEC_REGISTRY names (refused in one line if malformed)."""
    path = os.environ.get(REGISTRY_ENV)
    if not path:
        return dict(BUILTIN)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApucodecError(f"{path}: unreadable model registry (${REGISTRY_ENV}): {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ApucodecError(f"{path}: a model registry is a JSON object with a 'models' mapping")
    found = {}
    for name, entry in models.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ApucodecError(f"{path}: model name {name!r} must be lowercase letters, digits, '.', '_', '-'")
        found[name] = _release(name, entry, path)
    return found


def lookup(name: str) -> Release:
    """The release called `name`; an unknown name lists the known ones."""
    known = releases()
    if name not in known:
        raise ApucodecError(f"{name}: no such model to pull (known: {', '.join(sorted(known)) or 'none'})")
    return known[name]


def models_root() -> Path:
    return cache_root() / MODELS_SUBDIR


def pulled_dir(name: str) -> Path:
    """Where `apucodec pull NAME` puts the model directory (it may not exist yet)."""
    return models_root() / name


def is_model_name(text: str) -> bool:
    """Could `text` be a registry name rather than a path? (No separators; the registry's own names.)"""
    if not NAME_PATTERN.match(text):
        return False
    try:
        return text in releases()
    except ApucodecError:
        return False
