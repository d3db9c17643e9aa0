"""The Vitis AI EP's provider options, derived from the machine and the graph, and the NPU generation behind them.

Facts these options follow (AMD Ryzen AI 1.6-1.8 documentation, `docs/modelrun.rst` and `docs/relnotes.rst` in
github.com/amd/ryzen-ai-documentation):
- `target` is `X2` on XDNA 2 NPUs (Strix, Strix Halo, Krackan); `X1` on XDNA 1 (Phoenix, Hawk Point), which also
  needs an `xclbin`. The generation is read from the PCI device ID (below) or from `xrt-smi examine`.
- `cache_dir` / `cache_key` are honoured for INT8 models only with `enable_cache_file_io_in_mem` = "0"; otherwise
  the compiled model lives in memory and every run recompiles. The key here is derived from the graph's sha256, so
  a changed graph never reuses a stale entry and the FP32 and INT8 graphs never share one.
- An FP32 graph is compiled to BF16 by the EP, and that compile needs a `config_file` whose `vaiml_partition` pass
  carries a `vaiml_config` (`optimize_level` 1-3).
- `log_level` is deprecated: verbosity is the session's `log_severity_level`. The `XLNX_*` environment variables
  are gone: nothing here sets any.

PCI IDs: the amdxdna kernel driver's device table (github.com/amd/xdna-driver,
src/driver/amdxdna/amdxdna_pci_drv.c): vendor 0x1022 device 0x1502 rev 0x00 is npu1 (Phoenix / Hawk Point);
device 0x17f0 is npu2 (rev 0x00), npu4 "Strix" (rev 0x10), npu5 "Strix Halo" (rev 0x11), npu6 "Krackan"
(rev 0x20). Device IDs outside this table get no target: the EP then uses its own default.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apucodec.model.user_cache import cache_root

AMD_VENDOR = 0x1022
PCI_DEVICES = Path("/sys/bus/pci/devices")
# device id -> (architecture, product family, Vitis AI EP target)
NPU_PCI_IDS: dict[int, tuple[str, str, str]] = {
    0x1502: ("XDNA", "Phoenix / Hawk Point", "X1"),
    0x17F0: ("XDNA 2", "Strix / Strix Halo / Krackan", "X2"),
}
# `xrt-smi examine` names the device; the driver's names are npu1 (Phoenix) and npu4/5/6 (Strix, Strix Halo,
# Krackan), and xrt-smi also prints product names.
XRT_NAMES = ((re.compile(r"npu1\b|phoenix|hawk", re.I), 0x1502),
             (re.compile(r"npu[456]\b|strix|krackan", re.I), 0x17F0))
DEFAULT_OPTIMIZE_LEVEL = 2
SEVERITY = {"verbose": 0, "debug": 0, "info": 1, "warning": 2, "warn": 2, "error": 3, "fatal": 4}


@dataclass
class NpuGeneration:
    device_id: int
    architecture: str
    family: str
    target: str
    source: str  # "pci 0000:c5:00.1" or "xrt-smi"

    @property
    def needs_xclbin(self) -> bool:
        return self.target == "X1"

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": f"{self.device_id:#06x}", "architecture": self.architecture, "family": self.family,
                "target": self.target, "needs_xclbin": self.needs_xclbin, "source": self.source}


def _read_hex(path: Path) -> int | None:
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def detect_npu(pci_root: Path = PCI_DEVICES, xrt_output: str | None = None) -> NpuGeneration | None:
    """The NPU generation from /sys/bus/pci/devices/*/{vendor,device}, else from `xrt-smi examine` text."""
    for dev in sorted(pci_root.glob("*")) if pci_root.is_dir() else []:
        if _read_hex(dev / "vendor") != AMD_VENDOR:
            continue
        device = _read_hex(dev / "device")
        if device in NPU_PCI_IDS:
            arch, family, target = NPU_PCI_IDS[device]
            return NpuGeneration(device, arch, family, target, f"pci {dev.name}")
    for pattern, device in XRT_NAMES:
        if xrt_output and pattern.search(xrt_output):
            arch, family, target = NPU_PCI_IDS[device]
            return NpuGeneration(device, arch, family, target, "xrt-smi")
    return None


def default_cache_dir() -> Path:
    """Per-user, outside the model directory (the bundled model may live in a read-only site-packages)."""
    return cache_root() / "vitisai"


def npu_cache_key(role: str, sha256: str) -> str:
    """The Vitis AI EP's cache_key option: one compiled-graph folder per graph role and content."""
    return f"apucodec-{role.replace('_', '-').replace('.', '-')}-{sha256[:16]}"


def bf16_config(optimize_level: int = DEFAULT_OPTIMIZE_LEVEL) -> dict[str, Any]:
    """The config_file an FP32 graph needs to be compiled to BF16 (Ryzen AI docs, "Compiling BF16 models")."""
    if optimize_level not in (1, 2, 3):
        raise ValueError(f"vaiml optimize_level must be 1, 2 or 3, not {optimize_level}")
    return {"passes": [{"name": "init", "plugin": "vaip-pass_init"},
                       {"name": "vaiml_partition", "plugin": "vaip-pass_vaiml_partition",
                        "vaiml_config": {"optimize_level": optimize_level}}],
            "target": "VAIML", "targets": [{"name": "VAIML", "pass": ["init", "vaiml_partition"]}]}


def vitisai_options(configured: dict[str, str], role: str, sha256: str, fp32_graph: bool,
                    npu: NpuGeneration | None, optimize_level: int = DEFAULT_OPTIMIZE_LEVEL) -> tuple[dict[str, str],
                                                                                                     list[str]]:
    """(options, notes): what a session on the Vitis AI EP gets, over what the manifest/CLI configured.

    `configured` wins wherever it sets a key; `log_level` is dropped (see session_severity). Nothing is written:
    the BF16 config file named here is written by write_bf16_config when a session is really created.
    """
    options = {k: v for k, v in configured.items() if k != "log_level"}
    notes = []
    options.setdefault("cache_dir", str(default_cache_dir()))
    options.setdefault("cache_key", npu_cache_key(role, sha256))
    options.setdefault("enable_cache_file_io_in_mem", "0")
    if npu is not None:
        options.setdefault("target", npu.target)
        if npu.needs_xclbin and "xclbin" not in options:
            notes.append(f"{npu.family} NPU (target X1) needs an xclbin: --ep-option vitisai:xclbin=PATH")
    else:
        notes.append("NPU generation unknown (no AMD NPU PCI ID, no xrt-smi): target left to the EP's default")
    if fp32_graph:
        options.setdefault("config_file", str(Path(options["cache_dir"]) / f"{options['cache_key']}.vaiml.json"))
        notes.append(f"FP32 graph: compiled to BF16 on the NPU (vaiml optimize_level {optimize_level})")
    return options, notes


def session_severity(configured: dict[str, str]) -> int | None:
    """The deprecated `log_level` provider option, as the session's log_severity_level (None if unset)."""
    level = configured.get("log_level")
    return SEVERITY.get(level.lower()) if level else None


def write_bf16_config(path: Path, optimize_level: int = DEFAULT_OPTIMIZE_LEVEL) -> None:
    """Write the vaiml config an FP32 graph's BF16 compile reads (only if missing or different)."""
    text = json.dumps(bf16_config(optimize_level), indent=2) + "\n"
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def ep_context_entries(enable: bool, file_path: str | None = None, embed: bool = False) -> dict[str, str]:
    """Session config entries that make ONNX Runtime write an EP-context model (a precompiled graph that can ship).

    A session created with these dumps `file_path` (default: next to the source graph, "_ctx.onnx") holding the
    EP's compiled partitions, embedded (`embed`) or as a side file. Loading that file later skips the compile.
    """
    if not enable:
        return {}
    entries = {"ep.context_enable": "1", "ep.context_embed_mode": "1" if embed else "0"}
    if file_path:
        entries["ep.context_file_path"] = str(file_path)
    return entries


def xlnx_environment() -> dict[str, str]:
    """XLNX_* variables set in this environment: ignored by Vitis AI EP 1.6+, so doctor points them out."""
    return {k: v for k, v in os.environ.items() if k.startswith("XLNX_")}
