"""Which stages run in worker processes, and under which Python: `--worker`, $APUCODEC_WORKERS, a user config file.

    --worker encoder=/opt/ryzen-ai/venv/bin/python     the encoder in a worker under AMD's venv
    --worker decoder=self                              the decoder in a worker under this interpreter

Set once instead of on every command: APUCODEC_WORKERS="encoder=/opt/ryzen-ai/venv/bin/python,decoder=self", or
`$XDG_CONFIG_HOME/apucodec/config.json` (default ~/.config/...) holding {"workers": {"encoder": "..."}}. The command
line wins over the environment, which wins over the config file; `--worker encoder=none` keeps a stage in this
process.

Never from the model directory: a model is data someone else may have made (a download, ./apucodec-model in the
current directory), and a manifest naming `"workers": {"encoder": "./evil"}` would have had a plain `apucodec run`
execute a program shipped inside it. A manifest's `workers` section is ignored, with a note saying so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apucodec.errors import ApucodecError

if TYPE_CHECKING:
    from apucodec.contract.manifest import Manifest

GRAPH_STAGES = ("encoder", "decoder")
WORKERS_ENV = "APUCODEC_WORKERS"
SELF = "self"
IN_PROCESS = "none"


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "apucodec" / "config.json"


def _check(stage: str, python: str, where: str) -> str:
    if stage not in GRAPH_STAGES:
        raise ApucodecError(f"{where}: unknown stage {stage!r}; workers can run {', '.join(GRAPH_STAGES)}")
    if python in (SELF, IN_PROCESS):
        return python
    found = shutil.which(python) if os.sep not in python else (python if os.access(python, os.X_OK) else None)
    if not found or Path(found).is_dir():
        raise ApucodecError(f"{where}: {python}: no such Python interpreter (give a path to python, or 'self')")
    return str(Path(found).absolute())


def parse_worker_options(values: Iterable[str], where: str = "--worker") -> dict[str, str]:
    """`--worker STAGE=PYTHON|self|none` (repeatable) -> {stage: python}."""
    workers: dict[str, str] = {}
    for value in values:
        stage, eq, python = value.partition("=")
        if not eq or not stage.strip() or not python.strip():
            raise ApucodecError(f"{where} {value!r}: expected STAGE=PYTHON, e.g. encoder=/opt/ryzen-ai/venv/bin/python"
                                " or encoder=self")
        workers[stage.strip()] = _check(stage.strip(), python.strip(), f"{where} {value}")
    return workers


def env_workers() -> dict[str, str]:
    """$APUCODEC_WORKERS: STAGE=PYTHON entries separated by commas."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    return parse_worker_options([p for p in text.split(",") if p.strip()], f"${WORKERS_ENV}") if text else {}


def _section(data: Any, where: str) -> dict[str, str]:
    section = data.get("workers") if isinstance(data, Mapping) else None
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ApucodecError(f"{where}: 'workers' must map a stage to a Python interpreter")
    return {str(stage): _check(str(stage), str(python), where) for stage, python in section.items()}


def config_workers(path: Path | None = None) -> dict[str, str]:
    try:
        path = path or user_config_path()
        if not path.is_file():
            return {}
    except (OSError, RuntimeError):  # HOME unset or unreadable: no config file, as if absent
        return {}
    from apucodec.contract.json_limits import read_json_bounded

    return _section(read_json_bounded(path, "JSON config"), str(path))


def manifest_names_workers(manifest: Manifest | None) -> bool:
    """Does a model's manifest carry a `workers` section (ignored: see the module docstring)?"""
    return manifest is not None and manifest.workers is not None


def resolve_workers(cli: Mapping[str, str], manifest: Manifest | None = None,
                    config_path: Path | None = None) -> dict[str, str]:
    """Stage -> interpreter, CLI over $APUCODEC_WORKERS over the user's config file; stages set to 'none' run in
    this process. `manifest` is accepted for callers' convenience and never read: a model directory does not get
    to choose a program to run."""
    merged = {**config_workers(config_path), **env_workers(), **cli}
    return {stage: python for stage, python in merged.items() if python != IN_PROCESS}
