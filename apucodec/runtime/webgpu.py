"""The decoder's GPU path: ONNX Runtime's WebGPU execution provider (Dawn; Vulkan on Linux) as a plugin EP.

The plugin ships in the `onnxruntime-ep-webgpu` wheel (the `webgpu` extra) as a shared library that must be
registered with onnxruntime once per process; its devices then appear in `ort.get_ep_devices()`, and a session
uses one through `SessionOptions.add_provider_for_devices`. Dawn picks the physical adapter itself and reports
nothing about it, so the probe here also asks the Vulkan loader (apucodec.runtime.vulkan) which devices exist:
that is what lets `doctor` and the placement report say *why* there is no adapter rather than just "none".
(doctor's rendering of this probe is apucodec.tools.gpu_report; this module decides what sessions can use.)

Public API (used by apucodec.runtime.eps and sessions for the decoder, and by `apucodec doctor`):

    probe = find_webgpu_devices()          # WebGpuProbe; never raises
    if probe.available:
        so = onnxruntime.SessionOptions()
        add_webgpu_provider(so, probe.device, {"preferredLayout": "NCHW"})   # plugin options, no prefix
    else:
        print(probe.reason)                 # one line: what is missing and how to get it

A software Vulkan adapter (Mesa lavapipe) is offered by the plugin only when ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1
is set. It runs the real GPU code path, which is what CI needs, but 20-40x slower than the CPU EP, so nothing here
ever sets that variable: tests and CI do.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from apucodec.runtime.vulkan import NO_DRIVER, VulkanDevice, VulkanReport, probe_vulkan

EP_NAME = "WebGpuExecutionProvider"  # the plugin's EP name (apucodec.runtime.eps.WEBGPU is this)
PLUGIN_MODULE = "onnxruntime_ep_webgpu"
PLUGIN_DISTRIBUTION = "onnxruntime-ep-webgpu"
REGISTRATION_NAME = "webgpu"
ALLOW_SOFTWARE_ENV = "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER"
# add_provider_for_devices prefixes plugin options itself; accept the fully qualified spelling too.
OPTION_PREFIX = "ep.webgpuexecutionprovider."
INSTALL_HINT = "install it with: pip install 'apucodec[webgpu]'"

_lock = threading.RLock()  # find_webgpu_devices holds it while registering
_registration: tuple[str | None, str | None] | None = None  # (library path, error) once attempted
_cached_probe: WebGpuProbe | None = None


@dataclass(frozen=True)
class WebGpuProbe:
    """Whether the WebGPU EP can run a session here, on which adapter, or why not.

    `device` is the onnxruntime OrtEpDevice to hand to `add_webgpu_provider`; `reason` is a complete one-line
    explanation whenever `available` is False. `notes` carry caveats that do not block (a software adapter).
    """

    available: bool
    reason: str | None
    device: Any = None  # onnxruntime.OrtEpDevice
    plugin_version: str | None = None
    library_path: str | None = None
    backend: str | None = None
    adapter: VulkanDevice | None = None
    software_adapter: bool = False
    vulkan: VulkanReport | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        """One line for logs, `doctor` and the placement report."""
        if not self.available:
            return f"no WebGPU adapter: {self.reason}"
        hw = self.hardware
        where = self.adapter.describe() if self.adapter else f"{hw['type']} {hw['vendor']} (device {hw['device_id']})"
        software = " - software adapter, for tests only" if self.software_adapter else ""
        return f"WebGPU via {self.backend or 'platform default backend'}: {where}{software}"

    @property
    def hardware(self) -> dict[str, Any]:
        """The ORT hardware device behind the EP device (type, vendor, PCI ids, metadata)."""
        if self.device is None:
            return {}
        hw = self.device.device
        return {"type": str(hw.type).rsplit(".", 1)[-1], "vendor": hw.vendor, "vendor_id": int(hw.vendor_id),
                "device_id": int(hw.device_id), "metadata": dict(hw.metadata)}


def software_allowed() -> bool:
    return os.environ.get(ALLOW_SOFTWARE_ENV, "") == "1"


def plugin_version() -> str | None:
    import importlib.metadata  # here, not at the top: the EP table (eps.py) imports this module on every start

    try:
        return importlib.metadata.version(PLUGIN_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def register_webgpu_plugin() -> tuple[str | None, str | None]:
    """Register the plugin library with onnxruntime, once per process; returns (library path, error).

    Safe to call from several threads and several times: onnxruntime refuses a second registration under the same
    name, and the devices the first one created stay valid for the life of the process.
    """
    global _registration
    with _lock:
        if _registration is not None:
            return _registration
        _registration = _register()
        return _registration


def _register() -> tuple[str | None, str | None]:
    if importlib.util.find_spec(PLUGIN_MODULE) is None:
        return None, f"the WebGPU plugin ({PLUGIN_DISTRIBUTION}) is not installed; {INSTALL_HINT}"
    import onnxruntime as ort

    if not hasattr(ort, "register_execution_provider_library"):
        return None, f"onnxruntime {ort.__version__} cannot load plugin EPs; upgrade to onnxruntime>=1.24.4"
    try:
        plugin = importlib.import_module(PLUGIN_MODULE)
        path = plugin.get_library_path()
    except (ImportError, RuntimeError, OSError) as exc:
        return None, f"the WebGPU plugin is broken ({exc}); reinstall it: pip install --force-reinstall " \
                     f"{PLUGIN_DISTRIBUTION}"
    try:
        ort.register_execution_provider_library(REGISTRATION_NAME, path)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        if "already registered" not in str(exc):
            return path, f"onnxruntime refused the WebGPU plugin library {path}: {str(exc).strip()}"
    return path, None


def _ep_devices() -> list[Any]:
    import onnxruntime as ort

    if not hasattr(ort, "get_ep_devices"):
        return []
    return [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]


def _pick_device(devices: list[Any]) -> Any:
    """A GPU device when there is one; the plugin currently offers one device and picks the adapter itself."""
    gpus = [d for d in devices if str(d.device.type).endswith("GPU")]
    return (gpus or devices)[0]


def _backend() -> str | None:
    return "Vulkan" if sys.platform.startswith("linux") else None


def _matching_adapter(device: Any, vulkan: VulkanReport | None) -> VulkanDevice | None:
    """The Vulkan device Dawn is most likely using: same PCI ids, else the first hardware one, else software."""
    if vulkan is None or not vulkan.devices:
        return None
    hw = device.device
    if str(hw.type).endswith("GPU"):
        same = [d for d in vulkan.hardware_devices if d.vendor_id == hw.vendor_id and d.device_id == hw.device_id]
        return (same or list(vulkan.hardware_devices) or list(vulkan.devices))[0]
    # The plugin offered a CPU hardware device: only a software adapter exists (ALLOW_SOFTWARE_ADAPTER set).
    return (list(vulkan.software_devices) or list(vulkan.devices))[0]


def _mesa_major(info: str) -> int | None:
    parts = info.split()
    if len(parts) >= 2 and parts[0] == "Mesa":
        head = parts[1].split(".", 1)[0]
        return int(head) if head.isdigit() else None
    return None


def _no_device_reason(vulkan: VulkanReport | None) -> str:
    if vulkan is not None and vulkan.error:
        return f"Vulkan: {vulkan.error}"
    if vulkan is not None and not vulkan.devices:
        return f"Vulkan lists no device: {NO_DRIVER}"
    if vulkan is not None and not vulkan.hardware_devices:
        names = ", ".join(f"{d.name}, {d.driver_info or d.driver_name}" for d in vulkan.software_devices)
        if not software_allowed():
            return (f"only a software Vulkan adapter exists ({names}); the WebGPU EP uses it only when "
                    f"{ALLOW_SOFTWARE_ENV}=1 (meant for tests: 20-40x slower than the CPU EP)")
        return f"the WebGPU plugin offered no device for the software Vulkan adapter ({names})"
    if vulkan is not None:
        names = ", ".join(d.describe() for d in vulkan.hardware_devices)
        return f"the WebGPU plugin offered no device although Vulkan lists {names}"
    return "the WebGPU plugin offered no device (no GPU adapter found)"


def _probe() -> WebGpuProbe:
    path, error = register_webgpu_plugin()
    version = plugin_version()
    vulkan = probe_vulkan() if sys.platform.startswith("linux") else None
    devices = _ep_devices()  # a WebGPU EP built into onnxruntime shows up here too, without the plugin
    if not devices:
        return WebGpuProbe(False, error or _no_device_reason(vulkan), plugin_version=version, library_path=path,
                           vulkan=vulkan)
    device = _pick_device(devices)
    # On Linux Dawn needs a Vulkan device; the plugin may offer an EP device for a GPU that has no Vulkan driver,
    # and then every session would fail with "Failed to get a WebGPU adapter".
    if vulkan is not None and (vulkan.error or not vulkan.devices):
        return WebGpuProbe(False, _no_device_reason(vulkan), device=None, plugin_version=version, library_path=path,
                           backend=_backend(), vulkan=vulkan)
    adapter = _matching_adapter(device, vulkan)
    software = adapter.is_software if adapter else not str(device.device.type).endswith("GPU")
    if software and not software_allowed():
        # A GPU is there (the plugin offered it) but Vulkan only has a software rasterizer: Dawn would run the
        # decoder on the CPU 20-40x slower than the CPU EP, which no user wants by accident.
        hw = device.device
        return WebGpuProbe(False, f"the GPU [{hw.vendor_id:#06x}:{hw.device_id:#06x}] has no Vulkan driver, only "
                           f"the software adapter {adapter.name if adapter else '(unknown)'}; {NO_DRIVER}",
                           plugin_version=version, library_path=path, backend=_backend(), vulkan=vulkan)
    notes: list[str] = []
    if software:
        notes.append(f"software adapter allowed by {ALLOW_SOFTWARE_ENV}=1: the GPU code path runs on the CPU, "
                     "20-40x slower than the CPU EP (for tests)")
        major = _mesa_major(adapter.driver_info) if adapter else None
        if major is not None and major < 25:
            notes.append("lavapipe from Mesa before 25 is known to be rejected by Dawn (missing "
                         "shaderUniform*ArrayDynamicIndexing); Debian 12: install Mesa 25 from bookworm-backports")
    return WebGpuProbe(True, None, device=device, plugin_version=version, library_path=path, backend=_backend(),
                       adapter=adapter, software_adapter=software, vulkan=vulkan, notes=tuple(notes))


def find_webgpu_devices(refresh: bool = False) -> WebGpuProbe:
    """Register the plugin (once) and report the WebGPU EP device to use, or why there is none.

    Cached per process: the plugin reads its environment when it is registered, so the answer cannot change later
    in the same process; `refresh` re-runs the Vulkan enumeration and device lookup only.
    """
    global _cached_probe
    with _lock:
        if _cached_probe is None or refresh:
            _cached_probe = _probe()
        return _cached_probe


def normalize_options(options: dict[str, Any] | None) -> dict[str, str]:
    """Plugin options as add_provider_for_devices wants them: unprefixed keys, string values."""
    result: dict[str, str] = {}
    for key, value in (options or {}).items():
        name = key[len(OPTION_PREFIX):] if key.lower().startswith(OPTION_PREFIX) else key
        result[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return result


def add_webgpu_provider(session_options: Any, device: Any, options: dict[str, Any] | None = None) -> None:
    """Append the WebGPU EP on `device` (from find_webgpu_devices) to `session_options`.

    `options` are the plugin's own keys (e.g. preferredLayout, validationMode, powerPreference, dawnBackendType);
    the plugin validates them when the session is created and refuses unknown values there.
    """
    if device is None:
        raise ValueError("add_webgpu_provider needs a device from find_webgpu_devices(); this probe found none")
    session_options.add_provider_for_devices([device], normalize_options(options))
