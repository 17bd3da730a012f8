"""Memory figures of the current process, read from /proc (Linux)."""

from __future__ import annotations


def status_mib(field: str) -> float:
    """``VmHWM`` (peak resident memory) or ``VmRSS`` (current) of this process, in MiB.

    ``resource.getrusage(...).ru_maxrss`` survives ``exec``: a benchmark child
    started by a parent that had already used memory would report the parent's
    peak. ``VmHWM`` belongs to the new address space only.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")
