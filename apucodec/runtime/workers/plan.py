"""Which stages run in worker processes, and under which Python: `--worker`, a user config file, the manifest.

    --worker encoder=/opt/ryzen-ai/venv/bin/python     the encoder in a worker under AMD's venv
    --worker decoder=self                              the decoder in a worker under this interpreter

Set once instead of on every command: `$XDG_CONFIG_HOME/apucodec/config.json` (default ~/.config/...), or the model
directory's manifest, hold {"workers": {"encoder": "/opt/ryzen-ai/venv/bin/python"}}. The command line wins over
the config file, which wins over the manifest; `--worker encoder=none` keeps a stage in this process.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError

GRAPH_STAGES = ("encoder", "decoder")
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


def parse_worker_options(values: Iterable[str]) -> dict[str, str]:
    """`--worker STAGE=PYTHON|self|none` (repeatable) -> {stage: python}."""
    workers: dict[str, str] = {}
    for value in values:
        stage, eq, python = value.partition("=")
        if not eq or not stage.strip() or not python.strip():
            raise ApucodecError(f"--worker {value!r}: expected STAGE=PYTHON, e.g. encoder=/opt/ryzen-ai/venv/bin/python"
                                " or encoder=self")
        workers[stage.strip()] = _check(stage.strip(), python.strip(), f"--worker {value}")
    return workers


def _section(data: Any, where: str) -> dict[str, str]:
    section = data.get("workers") if isinstance(data, Mapping) else None
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ApucodecError(f"{where}: 'workers' must map a stage to a Python interpreter")
    return {str(stage): _check(str(stage), str(python), where) for stage, python in section.items()}


def config_workers(path: Path | None = None) -> dict[str, str]:
    path = path or user_config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ApucodecError(f"{path}: not a readable JSON config ({exc})") from exc
    return _section(data, str(path))


def resolve_workers(cli: Mapping[str, str], manifest: Mapping[str, Any] | None,
                    config_path: Path | None = None) -> dict[str, str]:
    """Stage -> interpreter, CLI over user config over manifest; stages set to 'none' run in this process."""
    merged = {**_section(manifest or {}, "manifest.json"), **config_workers(config_path), **cli}
    return {stage: python for stage, python in merged.items() if python != IN_PROCESS}
