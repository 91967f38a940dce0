"""pyinit's own process figures, the `process_*` set every Prometheus client library exports.

Read from /proc/self at each scrape (a few small reads, no psutil import at rest).
"""

from __future__ import annotations

import functools
import os
import resource

from .promtext import Sample

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

PROCESS_FAMILIES = (
    ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds."),
    ("process_open_fds", "gauge", "Number of open file descriptors."),
    ("process_max_fds", "gauge", "Maximum number of open file descriptors."),
    ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."),
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes."),
    ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."),
)


@functools.cache
def _boot_time() -> float:
    """When the machine booted (constant: read once)."""
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0


def process_figures() -> dict[str, list[Sample]]:
    """Each process_* family's one sample; a figure that cannot be read is left out."""
    figures: dict[str, float | int] = {}
    times = os.times()
    figures["process_cpu_seconds_total"] = round(times.user + times.system, 6)
    try:
        figures["process_open_fds"] = len(os.listdir("/proc/self/fd")) - 1  # less the directory's own fd
    except OSError:
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        figures["process_max_fds"] = soft
    try:
        with open("/proc/self/stat", "rb") as stat:
            # The command may hold spaces and parentheses: the fields start after the last ')'.
            fields = stat.read().rsplit(b")", 1)[1].split()
        figures["process_virtual_memory_bytes"] = int(fields[20])
        figures["process_resident_memory_bytes"] = int(fields[21]) * _PAGE
        figures["process_start_time_seconds"] = round(_boot_time() + int(fields[19]) / _TICKS, 2)
    except (OSError, IndexError, ValueError):
        pass
    return {name: [("", value)] for name, value in figures.items()}
