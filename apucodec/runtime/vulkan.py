"""Which Vulkan devices this machine has, asked of the Vulkan loader directly (ctypes, no extra package).

The WebGPU EP (Dawn) drives the GPU through Vulkan on Linux but says nothing about the adapter it picked, and when
it offers no device it does not say why. Enumerating the Vulkan physical devices ourselves tells the user which
of the usual causes applies: no loader (libvulkan1 missing), no driver (no ICD, e.g. RADV not installed), or only a
software rasterizer (Mesa lavapipe/llvmpipe), which the plugin ignores unless explicitly allowed.

Only the first fields of VkPhysicalDeviceProperties are read (identity and type), plus the Vulkan 1.2 driver
properties (driver name and version string, e.g. "Mesa 25.0.7"); everything else in those structs is left as
opaque bytes, so this stays independent of the Vulkan headers' version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass, field

LOADER_NAMES = ("libvulkan.so.1", "libvulkan.so", "vulkan-1.dll", "libvulkan.1.dylib")
# Environment variables through which the Vulkan loader is pointed at driver manifests (ICD JSON files).
DRIVER_ENV_VARS = ("VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VK_ADD_DRIVER_FILES")

NO_DRIVER = "no Vulkan driver is installed (AMD APUs: Mesa's RADV, Debian/Ubuntu package mesa-vulkan-drivers)"

_VK_SUCCESS = 0
_VK_INCOMPLETE = 5
_STYPE_APPLICATION_INFO = 0
_STYPE_INSTANCE_CREATE_INFO = 1
_STYPE_PHYSICAL_DEVICE_PROPERTIES_2 = 1000059001
_STYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES = 1000196000
_DEVICE_TYPES = {0: "other", 1: "integrated-gpu", 2: "discrete-gpu", 3: "virtual-gpu", 4: "cpu"}
_VENDORS = {0x1002: "AMD", 0x10DE: "NVIDIA", 0x8086: "Intel", 0x10005: "Mesa", 0x13B5: "ARM", 0x5143: "Qualcomm",
            0x106B: "Apple"}


def _version(packed: int) -> str:
    """VK_MAKE_API_VERSION(variant, major, minor, patch) back to "major.minor.patch"."""
    return f"{(packed >> 22) & 0x7F}.{(packed >> 12) & 0x3FF}.{packed & 0xFFF}"


def _make_api_version(major: int, minor: int) -> int:
    return (major << 22) | (minor << 12)


class _ApplicationInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int32), ("pNext", ctypes.c_void_p), ("pApplicationName", ctypes.c_char_p),
                ("applicationVersion", ctypes.c_uint32), ("pEngineName", ctypes.c_char_p),
                ("engineVersion", ctypes.c_uint32), ("apiVersion", ctypes.c_uint32)]


class _InstanceCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int32), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_ApplicationInfo)), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p), ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


class _PhysicalDeviceProperties(ctypes.Structure):
    # The identity fields, then the rest of the struct (limits, sparse properties: 824 bytes in all in Vulkan 1.4)
    # as opaque, 8-byte-aligned padding with generous room.
    _fields_ = [("apiVersion", ctypes.c_uint32), ("driverVersion", ctypes.c_uint32), ("vendorID", ctypes.c_uint32),
                ("deviceID", ctypes.c_uint32), ("deviceType", ctypes.c_int32), ("deviceName", ctypes.c_char * 256),
                ("pipelineCacheUUID", ctypes.c_uint8 * 16), ("_rest", ctypes.c_uint64 * 256)]


class _DriverProperties(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int32), ("pNext", ctypes.c_void_p), ("driverID", ctypes.c_int32),
                ("driverName", ctypes.c_char * 256), ("driverInfo", ctypes.c_char * 256),
                ("conformanceVersion", ctypes.c_uint8 * 4)]


class _PhysicalDeviceProperties2(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int32), ("pNext", ctypes.c_void_p), ("properties", _PhysicalDeviceProperties)]


@dataclass(frozen=True)
class VulkanDevice:
    """One Vulkan physical device as the loader reports it."""

    name: str
    device_type: str  # integrated-gpu | discrete-gpu | virtual-gpu | cpu | other
    vendor_id: int
    device_id: int
    api_version: str
    driver_name: str = ""
    driver_info: str = ""

    @property
    def vendor(self) -> str:
        return _VENDORS.get(self.vendor_id, f"0x{self.vendor_id:04x}")

    @property
    def is_software(self) -> bool:
        """A CPU rasterizer (lavapipe/llvmpipe, SwiftShader): works, but far slower than the CPU EP."""
        return self.device_type == "cpu"

    def describe(self) -> str:
        driver = f", {self.driver_info or self.driver_name}" if (self.driver_info or self.driver_name) else ""
        return f"{self.name} [{self.device_type}, {self.vendor}, Vulkan {self.api_version}{driver}]"


@dataclass(frozen=True)
class VulkanReport:
    """What the Vulkan loader found: `loader` is the library path, or None with `error` saying why."""

    loader: str | None
    devices: tuple[VulkanDevice, ...] = ()
    error: str | None = None
    driver_env: dict[str, str] = field(default_factory=dict)

    @property
    def hardware_devices(self) -> tuple[VulkanDevice, ...]:
        return tuple(d for d in self.devices if not d.is_software)

    @property
    def software_devices(self) -> tuple[VulkanDevice, ...]:
        return tuple(d for d in self.devices if d.is_software)


def _load_loader() -> tuple[ctypes.CDLL | None, str | None]:
    names = list(LOADER_NAMES)
    found = ctypes.util.find_library("vulkan")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name), name
        except OSError:
            continue
    return None, None


def _read_device(lib: ctypes.CDLL, handle: ctypes.c_void_p) -> VulkanDevice:
    props2 = _PhysicalDeviceProperties2(sType=_STYPE_PHYSICAL_DEVICE_PROPERTIES_2)
    driver = _DriverProperties(sType=_STYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES)
    # Driver properties exist from Vulkan 1.2; ask for the base properties first to know the device's version.
    lib.vkGetPhysicalDeviceProperties(handle, ctypes.byref(props2.properties))
    has_driver_props = props2.properties.apiVersion >= _make_api_version(1, 2)
    if has_driver_props and hasattr(lib, "vkGetPhysicalDeviceProperties2"):
        props2.pNext = ctypes.cast(ctypes.pointer(driver), ctypes.c_void_p)
        lib.vkGetPhysicalDeviceProperties2(handle, ctypes.byref(props2))
    else:
        has_driver_props = False
    base = props2.properties
    return VulkanDevice(
        name=base.deviceName.decode(errors="replace"),
        device_type=_DEVICE_TYPES.get(base.deviceType, "other"),
        vendor_id=int(base.vendorID),
        device_id=int(base.deviceID),
        api_version=_version(base.apiVersion),
        driver_name=driver.driverName.decode(errors="replace") if has_driver_props else "",
        driver_info=driver.driverInfo.decode(errors="replace") if has_driver_props else "",
    )


def probe_vulkan() -> VulkanReport:
    """Enumerate Vulkan physical devices; never raises (a failure is reported in `error`)."""
    driver_env = {k: os.environ[k] for k in DRIVER_ENV_VARS if k in os.environ}
    if sys.platform == "darwin":
        return VulkanReport(None, error="macOS: WebGPU uses Metal, not Vulkan", driver_env=driver_env)
    lib, name = _load_loader()
    if lib is None:
        return VulkanReport(None, error="no Vulkan loader (libvulkan.so.1) found; install it (Debian/Ubuntu: "
                            "apt install libvulkan1)", driver_env=driver_env)
    lib.vkCreateInstance.restype = ctypes.c_int32
    lib.vkCreateInstance.argtypes = [ctypes.POINTER(_InstanceCreateInfo), ctypes.c_void_p,
                                     ctypes.POINTER(ctypes.c_void_p)]
    lib.vkEnumeratePhysicalDevices.restype = ctypes.c_int32
    lib.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]
    lib.vkGetPhysicalDeviceProperties.restype = None
    lib.vkGetPhysicalDeviceProperties.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    if hasattr(lib, "vkGetPhysicalDeviceProperties2"):
        lib.vkGetPhysicalDeviceProperties2.restype = None
        lib.vkGetPhysicalDeviceProperties2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vkDestroyInstance.restype = None
    lib.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    app = _ApplicationInfo(sType=_STYPE_APPLICATION_INFO, pApplicationName=b"apucodec", pEngineName=b"apucodec",
                           apiVersion=_make_api_version(1, 1))
    create = _InstanceCreateInfo(sType=_STYPE_INSTANCE_CREATE_INFO, pApplicationInfo=ctypes.pointer(app))
    instance = ctypes.c_void_p()
    result = lib.vkCreateInstance(ctypes.byref(create), None, ctypes.byref(instance))
    if result != _VK_SUCCESS:
        # VK_ERROR_INCOMPATIBLE_DRIVER (-9) is what the loader returns when no driver (ICD) is installed at all.
        if result == -9:
            error = (f"{NO_DRIVER} (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER"
                     f"{'; check ' + ', '.join(driver_env) if driver_env else ''})")
        else:
            error = f"vkCreateInstance failed with VkResult {result}"
        return VulkanReport(name, error=error, driver_env=driver_env)
    try:
        count = ctypes.c_uint32(0)
        result = lib.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        if result not in (_VK_SUCCESS, _VK_INCOMPLETE):
            return VulkanReport(name, error=f"vkEnumeratePhysicalDevices failed with VkResult {result}",
                                driver_env=driver_env)
        handles = (ctypes.c_void_p * count.value)()
        if count.value:
            lib.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        devices = tuple(_read_device(lib, ctypes.c_void_p(h)) for h in handles[: count.value])
    finally:
        lib.vkDestroyInstance(instance, None)
    return VulkanReport(name, devices=devices, driver_env=driver_env)
