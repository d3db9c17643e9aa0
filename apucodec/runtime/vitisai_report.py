"""Proof of NPU placement: the Vitis AI EP's operator assignment report and its compile-log counts.

ONNX Runtime's node placement says "VitisAI" for every node the EP claims, including the nodes the EP runs on the
CPU itself (`VITIS_EP_CPU`); only the EP's own accounting says what the NPU really ran. Two sources, both written by
the EP:

* `vitisai_ep_report.json` in `<cache_dir>/<cache_key>/` (the "Operator Assignment Report", Ryzen AI docs
  `docs/modelrun.rst` in github.com/amd/ryzen-ai-documentation): a JSON object whose `deviceStat` list has one
  entry per device, `{"name": "all" | "CPU" | "DPU" | "NPU" | "VITIS_EP_CPU", "nodeNum": int,
  "supportedOpType": ["::Conv", ...]}`. The documented example names the NPU "DPU"; reports written by newer EPs,
  as quoted in users' write-ups, name it "NPU" and list "VITIS_EP_CPU" separately. It is written on every session
  build, cache hits included.
* the INFO-level lines a cold compile logs (Ryzen AI docs `docs/inst.rst` and `docs/getstartex.rst`):
  `[Vitis AI EP] No. of Operators :   NPU   398 VITIS_EP_CPU     2` (BF16 compiles say `VAIML` for the NPU;
  ONNX Runtime's log prefix may split it over several lines, one device per line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError, PlacementError

REPORT_NAME = "vitisai_ep_report.json"
NPU_NAMES = {"NPU": "NPU", "DPU": "NPU", "VAIML": "NPU", "IPU": "NPU"}
CPU_NAMES = ("CPU", "VITIS_EP_CPU")
_ORT_PREFIX = re.compile(r"\[[A-Z]:onnxruntime:[^\]]*\]")
_OPERATORS = re.compile(r"No\. of Operators\s*:(.*?)(?=\[Vitis AI EP\]\s*No\. of Subgraphs|No\. of Operators|\Z)",
                        re.S)
_COUNT = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s+(\d+)\b")


@dataclass
class NpuOpCounts:
    """Operators per device as the Vitis AI EP counted them ("NPU", "CPU", "VITIS_EP_CPU")."""

    counts: dict[str, int]
    source: str
    cpu_op_types: list[str] = field(default_factory=list)

    @property
    def on_npu(self) -> int:
        return self.counts.get("NPU", 0)

    @property
    def on_cpu(self) -> int:
        return sum(self.counts.get(name, 0) for name in CPU_NAMES)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "on_npu": self.on_npu, "on_cpu": self.on_cpu, "source": self.source,
                "cpu_op_types": list(self.cpu_op_types)}


def _device_name(name: str) -> str:
    return NPU_NAMES.get(name.upper(), name.upper())


def parse_report(data: dict[str, Any], source: str = REPORT_NAME) -> NpuOpCounts:
    """Counts from a parsed vitisai_ep_report.json (the `deviceStat` section; "all" is the total, not a device)."""
    stats = data.get("deviceStat")
    if not isinstance(stats, list):
        raise ValueError("no deviceStat list")
    counts: dict[str, int] = {}
    cpu_types: set[str] = set()
    for entry in stats:
        name = str(entry.get("name", ""))
        if not name or name.lower() == "all":
            continue
        device = _device_name(name)
        counts[device] = counts.get(device, 0) + int(entry.get("nodeNum") or 0)
        if device in CPU_NAMES:
            cpu_types.update(str(t).rsplit(":", 1)[-1] for t in entry.get("supportedOpType") or [])
    return NpuOpCounts(counts, source, sorted(cpu_types))


def read_report(path: Path) -> NpuOpCounts | None:
    """The report at `path`, or None when absent; a report that is not the documented shape is an error."""
    if not path.is_file():
        return None
    try:
        return parse_report(json.loads(path.read_text()), f"{path}")
    except (ValueError, TypeError, AttributeError) as exc:
        raise ApucodecError(f"{path}: not a Vitis AI operator assignment report ({exc})") from exc


def parse_compile_log(text: str) -> NpuOpCounts | None:
    """Counts from the last "No. of Operators" block of a Vitis AI EP compile log; None if the log has none."""
    blocks = _OPERATORS.findall(_ORT_PREFIX.sub(" ", text))
    if not blocks:
        return None
    counts: dict[str, int] = {}
    for name, n in _COUNT.findall(blocks[-1]):
        device = _device_name(name)
        counts[device] = counts.get(device, 0) + int(n)
    return NpuOpCounts(counts, "compile log") if counts else None


def find_counts(cache_dir: str | None, cache_key: str | None, log_text: str = "") -> NpuOpCounts | None:
    """The report in the session's cache entry if there is one, else the compile log's counts."""
    if cache_dir and cache_key:
        report = read_report(Path(cache_dir) / cache_key / REPORT_NAME)
        if report is not None:
            return report
    return parse_compile_log(log_text)


def check_npu_only(stage: str, counts: NpuOpCounts | None) -> None:
    """--strict on the NPU: every operator of the stage must be on the NPU, and that must be provable."""
    if counts is None:
        raise PlacementError(f"{stage}: --strict cannot prove NPU placement: no {REPORT_NAME} in the Vitis AI cache "
                            "entry and no operator counts in the compile log")
    if counts.on_cpu or not counts.on_npu:
        types = f" ({', '.join(counts.cpu_op_types)})" if counts.cpu_op_types else ""
        raise PlacementError(f"{stage}: {counts.on_cpu} operators run on the CPU inside the Vitis AI EP{types}, "
                            f"{counts.on_npu} on the NPU (from {counts.source}); --strict forbids that")
