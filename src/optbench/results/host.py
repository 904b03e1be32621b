"""Where a run ran: CPU, cores, device and package versions, stored with each record.

Nothing here imports torch or autograd (importing torch alone takes seconds): versions come
from the installed distributions' metadata, and a CUDA device is named only when torch has
already been imported by the backend that used it.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("numpy", "torch", "autograd", "optbench")


def host_info(device: str = "cpu") -> dict[str, Any]:
    """The host record: cpu, cores, hostname, platform, device, device_name and versions."""
    info = dict(_static())
    info["versions"] = dict(info["versions"])  # callers may edit their copy
    info["device"] = device
    info["device_name"] = _device_name(device, info["cpu"])
    return info


@lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "hostname": socket.gethostname(),
            "platform": platform.platform(), "versions": versions}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown"


def _device_name(device: str, cpu: str) -> str | None:
    if device == "cpu":
        return cpu
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None:
        try:
            return str(torch.cuda.get_device_name(device))
        except Exception:  # no CUDA after all, or a partly imported torch: the name is optional
            return None
    return None
