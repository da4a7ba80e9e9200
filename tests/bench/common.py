"""What the benchmark scripts share: arguments, timing, node addresses, tables, the machine.

Only helpers for printing figures live here: nothing may assert on a time or decide whether
a figure is good; each script keeps its own rules for the counts it checks.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tests.support import REPO

__all__ = [
    "arguments_parser",
    "cold_start",
    "cpu_seconds",
    "machine",
    "measure_sizes",
    "memory_mib",
    "node_address",
    "table",
    "timed",
    "verdict",
]

DEFAULT_SIZES = (10, 1000, 5000)
KIB_PER_MIB = 1024

_T = TypeVar("_T")


def arguments_parser(
    script: str, description: str | None, *, repeat: int, sizes_of: str | None = None
) -> argparse.ArgumentParser:
    """``--repeat`` (runs per figure) and, when ``sizes_of`` names what is counted, ``--sizes``."""
    parser = argparse.ArgumentParser(prog=f"python -m tests.bench.{script}", description=description)
    if sizes_of is not None:
        parser.add_argument(
            "--sizes",
            type=lambda text: [int(size) for size in text.split(",")],
            default=list(DEFAULT_SIZES),
            help=f"{sizes_of} counts, comma-separated (default: {','.join(map(str, DEFAULT_SIZES))})",
        )
    parser.add_argument("--repeat", type=int, default=repeat, help="runs per figure; medians are shown")
    return parser


def node_address(index: int) -> ipaddress.IPv4Address:
    """The ``index``-th node's address in 10.1.0.0/16, skipping network and broadcast octets."""
    return ipaddress.IPv4Address(f"10.1.{index // 200}.{index % 200 + 10}")


def timed(action: Callable[[], _T]) -> tuple[float, _T]:
    """Milliseconds ``action`` took, starting from an empty collector so that runs compare, and
    its result."""
    gc.collect()
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def measure_sizes(
    measure: Callable[[int, int, Path], _T], sizes: Sequence[int], repeat: int, *, unit: str, prefix: str
) -> list[_T]:
    """``measure(size, repeat, folder)`` for each size in order, sharing one scratch folder; the
    progress goes to stderr so that stdout holds only the figures."""
    samples = []
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        for size in sizes:
            samples.append(measure(size, repeat, Path(folder)))
            print(f"measured {size} {unit}", file=sys.stderr, flush=True)
    return samples


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The header and rows as right-aligned columns, two spaces apart."""
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
    )


def verdict(problems: Sequence[str]) -> int:
    """Print each broken rule; the exit code: 1 when any, else 0."""
    for problem in problems:
        print(f"GROWS WHERE IT SHOULD NOT: {problem}")
    return 1 if problems else 0


def memory_mib(pid: int, field: str) -> float:
    """A ``Vm*`` line of /proc/<pid>/status (in kB) as MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) / KIB_PER_MIB
    raise LookupError(f"{field} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """utime + stime of /proc/<pid>/stat: the process's CPU time so far, every thread's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # The fields after the command name start at the third, state; utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {platform.node()}, {model}, {os.cpu_count()} cores, {memory} MiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; load average {load}"
    )


def cold_start(repeat: int) -> list[tuple[str, float]]:
    """Seconds of ``peeringd --help`` and ``peeringd validate`` as whole processes (median)."""
    program = shutil.which("peeringd", path=str(Path(sys.executable).parent)) or "peeringd"
    example = REPO / "state" / "peering.yaml"
    results = []
    for label, arguments in (
        ("peeringd --help", ["--help"]),
        ("peeringd validate", ["validate", "-f", str(example)]),
    ):
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([program, *arguments], capture_output=True, check=True)
            samples.append(time.perf_counter() - started)
        results.append((label, statistics.median(samples)))
    return results
