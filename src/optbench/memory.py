"""Refusing, before allocating, what would not fit in memory.

A size the user chooses (`solve --starts`, `-P n_samples`) is turned into an estimate of the
bytes the run will hold at once, and compared with what this process may still allocate:
the system's available memory (MemAvailable), lowered by a cgroup's memory limit and by
RLIMIT_AS where one is set. Beyond it the input is refused in one line that states both
numbers, instead of a MemoryError (or the OOM killer) minutes later.

Estimates are deliberately generous (their factors are measured peaks with a margin), so a
run that is accepted fits; one near the limit may be refused although it would just fit.
"""

from __future__ import annotations

import os

from optbench.errors import UsageError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def human(n: float) -> str:
    """Bytes as a person reads them: '41.0 GiB', '312 MiB'."""
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= MiB:
        return f"{n / MiB:.0f} MiB"
    return f"{n / KiB:.0f} KiB"


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * KiB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, else v1), or None."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        limit = _read_int(f"/sys/fs/cgroup/{limit_file}")
        usage = _read_int(f"/sys/fs/cgroup/{usage_file}")
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(0, limit - usage)
    return None


def _address_space_headroom() -> int | None:
    """RLIMIT_AS minus the address space already mapped, or None when unlimited."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    mapped = 0
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    mapped = int(line.split()[1]) * KiB
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - mapped)


def available() -> int:
    """Bytes this process may still allocate, as well as can be told."""
    candidates = [_meminfo("MemAvailable"), _cgroup_headroom(), _address_space_headroom()]
    known = [c for c in candidates if c is not None]
    if not known:  # not Linux: the physical memory
        try:
            known = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # nothing known: refuse nothing
    return min(known)


def require(need: int, what: str) -> None:
    """Refuse `what` (e.g. "--starts 1000000 with 256 unknowns") when it needs more than is
    available: one line with both numbers."""
    have = available()
    if need > have:
        raise UsageError(f"{what} would need about {human(need)} of memory; about "
                         f"{human(have)} is available to optbench (give a smaller value)")
