"""Soak: thousands of passes of a real ``peeringd run``, its memory, file descriptors and threads.

``peeringd run --interval`` (a pass every 0.1 s by default) runs against the lab's Kubernetes API
server (in this process) and a NetScaler simulator (in a process of its own, as an ADC is a machine
of its own), both on 127.0.0.1, with a few nodes. Once a second this script scrapes the daemon's
``/metrics`` (passes by result, ``process_resident_memory_bytes``, ``process_open_fds``) and reads
``Threads`` from /proc/PID/status, and with a seeded chance makes one change of the churn: a node
joins, a node leaves, the state file is rewritten unchanged (touched), its ``maxPaths`` flips
between 4 and 8 (a device change and a save), or it is broken and restored at the next change. The
seed fixes which changes come in which order; how many passes fall between them depends on the
machine's speed.

Targets, judged at the end: RSS grows at most 5 MiB after the warm-up (the first tenth of the
passes), file descriptors and threads do not grow, and no pass fails. Each start and end figure is
the lowest of the first and last five samples, so that a pass in flight (a connection or a thread
it holds for a moment) is not counted as growth. The script prints the seed first, a sample each
tenth of the way, then the figures, and exits 1 when a target is missed (with the command that
replays the seed), 0 otherwise.

Run from the repository root: ``.venv/bin/python -m tests.reliability.soak [--passes 10000]``.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peeringd.lab.kubeapi import KubeApiServer
from tests.bench.common import machine, memory_mib, node_address
from tests.bench.simulators import SimulatorProcess
from tests.bgplab.poll import until
from tests.conftest import CRD_SOURCE, node_object, pool_object
from tests.runtime.daemon_harness import STATE, DaemonProcess

__all__ = ["Sample", "Verdict", "judge", "main", "read_sample"]

GROUP = "crd.projectcalico.org/v1"
NODES_AT_START = 5
RSS_GROWTH_LIMIT_MIB = 5.0
WARM_UP_SHARE = 0.1
EDGE_SAMPLES = 5  # samples at each end whose lowest figure counts
SAMPLE_SECONDS = 1.0
CHURN_CHANCE = 0.5  # per sample: about one change every two seconds
CHURN = ("join", "leave", "touch", "edit", "break")
BYTES_PER_MIB = 1024 * 1024
START_SECONDS = 120
# Seconds without a new pass after which the daemon is taken as stuck.
STALL_SECONDS = 120


@dataclass(frozen=True)
class Sample:
    """One look at the daemon: passes by result so far, and its size."""

    seconds: float  # since the daemon started
    passes: int
    failed: int
    rss_mib: float
    fds: int
    threads: int


def read_sample(metrics: dict[str, float], threads: int, seconds: float) -> Sample:
    """A Sample from a scrape of /metrics (``name{labels}`` -> value, as the harness reads it)."""
    passes = {
        key: int(value) for key, value in metrics.items() if key.startswith("peeringd_reconcile_total{")
    }
    return Sample(
        seconds=seconds,
        passes=sum(passes.values()),
        failed=sum(value for key, value in passes.items() if 'result="failed"' in key),
        rss_mib=metrics["process_resident_memory_bytes"] / BYTES_PER_MIB,
        fds=int(metrics["process_open_fds"]),
        threads=threads,
    )


@dataclass(frozen=True)
class Verdict:
    """The figures judged, and the targets missed (none: the soak passed)."""

    warm: Sample  # the first sample after the warm-up
    last: Sample
    rss_start: float
    rss_end: float
    rss_peak: float
    fds_start: int
    fds_end: int
    threads_start: int
    threads_end: int
    missed: tuple[str, ...]

    @property
    def rss_growth(self) -> float:
        return self.rss_end - self.rss_start


def judge(samples: Sequence[Sample], passes: int) -> Verdict:
    """The targets over ``samples`` of a soak that was to run ``passes`` passes."""
    warm_up = max(1, int(passes * WARM_UP_SHARE))
    after = [sample for sample in samples if sample.passes >= warm_up] or list(samples[-1:])
    first, last = after[:EDGE_SAMPLES], after[-EDGE_SAMPLES:]
    verdict = Verdict(
        warm=after[0],
        last=after[-1],
        rss_start=min(s.rss_mib for s in first),
        rss_end=min(s.rss_mib for s in last),
        rss_peak=max(s.rss_mib for s in after),
        fds_start=min(s.fds for s in first),
        fds_end=min(s.fds for s in last),
        threads_start=min(s.threads for s in first),
        threads_end=min(s.threads for s in last),
        missed=(),
    )
    missed = []
    if verdict.last.passes < passes:
        missed.append(f"{verdict.last.passes} passes of {passes}")
    if verdict.last.failed:
        missed.append(f"{verdict.last.failed} passes failed")
    if verdict.rss_growth > RSS_GROWTH_LIMIT_MIB:
        missed.append(f"RSS grew {verdict.rss_growth:.1f} MiB (at most {RSS_GROWTH_LIMIT_MIB:.0f})")
    if verdict.fds_end > verdict.fds_start:
        missed.append(f"file descriptors grew from {verdict.fds_start} to {verdict.fds_end}")
    if verdict.threads_end > verdict.threads_start:
        missed.append(f"threads grew from {verdict.threads_start} to {verdict.threads_end}")
    return Verdict(**{**verdict.__dict__, "missed": tuple(missed)})


class Lab:
    """The API server, one simulated ADC, the state file, and the churn made to them."""

    def __init__(self, server: KubeApiServer, adc: SimulatorProcess, folder: Path, rng: random.Random):
        self.server = server
        self.adc = adc
        self.folder = folder
        self.rng = rng
        self.state_file = folder / "state" / "peering.yaml"
        self.state_file.parent.mkdir()
        self.kubeconfig = server.write_kubeconfig(folder / "kubeconfig")
        (folder / "adc-1.password").write_text(adc.password + "\n")
        (folder / "known_hosts").write_text(adc.known_hosts_entry + "\n")
        server.put(pool_object(GROUP))
        self.nodes: list[str] = []
        self.added = 0
        self.paths = 8
        self.broken = False
        self.done: dict[str, int] = dict.fromkeys(CHURN, 0)
        for _ in range(NODES_AT_START):
            self._join()
        self._write(self._text())

    def _text(self) -> str:
        return STATE.format(port=self.adc.port, secrets=self.folder, ebgp=self.paths, interval="1h")

    def _write(self, text: str) -> None:
        """Replace the file by rename, as editors and ``git checkout`` do."""
        staged = self.state_file.with_name(".peering.yaml.swp")  # a scratch name the watch ignores
        staged.write_text(text)
        os.replace(staged, self.state_file)

    def _join(self) -> None:
        name = f"soak-{self.added:05d}"
        self.server.put(node_object(name, str(node_address(self.added))))
        self.nodes.append(name)
        self.added += 1

    def churn(self) -> str:
        """One seeded change; a broken file is restored first."""
        if self.broken:
            self.broken = False
            self._write(self._text())
            return "restore"
        kind = self.rng.choice(CHURN)
        if kind == "leave" and len(self.nodes) <= 1:
            kind = "join"  # an empty cluster would be refused (policy.allowEmpty)
        if kind == "join":
            self._join()
        elif kind == "leave":
            name = self.nodes.pop(self.rng.randrange(len(self.nodes)))
            self.server.delete("nodes", name)
        elif kind == "touch":
            self._write(self._text())
        elif kind == "edit":
            self.paths = 12 - self.paths
            self._write(self._text())
        else:
            self.broken = True
            self._write(self._text().replace("asNumber: 500", "asNumber: [500"))
        self.done[kind] += 1
        return kind


@contextmanager
def lab(folder: Path, rng: random.Random) -> Iterator[Lab]:
    adc = SimulatorProcess(folder, "adc-1")
    try:
        adc.empty()
        with KubeApiServer(CRD_SOURCE, "v1") as server:
            yield Lab(server, adc, folder, rng)
    finally:
        adc.stop()


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "Threads":
            return int(value)
    raise LookupError(f"Threads not in /proc/{pid}/status")


def soak(world: Lab, daemon: DaemonProcess, passes: int) -> tuple[list[Sample], float]:
    """Sample and churn until ``passes`` passes ran; the samples and the wall time."""
    started = time.monotonic()
    samples: list[Sample] = []
    progress_every = max(1, passes // 10)
    last_progress = 0
    last_passes, last_new = 0, started
    while True:
        now = time.monotonic()
        # Threads first: the scrape's own handler thread may outlive its answer by a moment.
        threads = threads_of(daemon.pid)
        sample = read_sample(daemon.metrics(), threads, now - started)
        samples.append(sample)
        if sample.passes >= passes:
            return samples, now - started
        if sample.passes > last_passes:
            last_passes, last_new = sample.passes, now
        elif now - last_new > STALL_SECONDS or daemon.process is None or daemon.process.poll() is not None:
            print(f"the daemon stopped passing after {sample.passes} passes; its log: {daemon.log}")
            return samples, now - started
        if sample.passes >= last_progress + progress_every:
            last_progress = sample.passes - sample.passes % progress_every
            print(row(sample), flush=True)
        if world.rng.random() < CHURN_CHANCE:
            world.churn()
        world.server.clear_journal()  # the in-process server would keep every request
        time.sleep(max(0.0, started + len(samples) * SAMPLE_SECONDS - time.monotonic()))


def row(sample: Sample) -> str:
    return (
        f"{sample.seconds:8.0f} s  {sample.passes:6d} passes  {sample.failed} failed  "
        f"RSS {sample.rss_mib:6.1f} MiB  fds {sample.fds:3d}  threads {sample.threads:3d}"
    )


def report(verdict: Verdict, world: Lab, *, wall: float, seed: int, passes: int, interval: float) -> str:
    """The figures, one ``name: value`` a line (the suite's smoke test reads them)."""
    churn = ", ".join(f"{count} {kind}" for kind, count in world.done.items())
    lines = [
        f"passes: {verdict.last.passes}",
        f"failed: {verdict.last.failed}",
        f"wall seconds: {wall:.0f}",
        f"passes a second: {verdict.last.passes / wall:.1f}" if wall else "passes a second: -",
        f"warm-up passes: {max(1, int(passes * WARM_UP_SHARE))}",
        f"RSS start MiB: {verdict.rss_start:.1f}",
        f"RSS end MiB: {verdict.rss_end:.1f}",
        f"RSS growth MiB: {verdict.rss_growth:.1f}",
        f"RSS peak MiB: {verdict.rss_peak:.1f}",
        f"fds start: {verdict.fds_start}",
        f"fds end: {verdict.fds_end}",
        f"threads start: {verdict.threads_start}",
        f"threads end: {verdict.threads_end}",
        f"churn: {churn}; nodes at the end: {len(world.nodes)}",
        f"interval seconds: {interval}",
        f"seed: {seed}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--passes", type=int, default=10_000, help="passes to run (default: 10000)")
    parser.add_argument("--seed", type=int, default=None, help="the churn's seed (default: a new one)")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between passes (peeringd run --interval)"
    )
    options = parser.parse_args(argv)
    if options.passes < 1:
        parser.error("--passes must be positive")
    seed = options.seed if options.seed is not None else secrets.randbelow(2**32)
    print(f"seed: {seed}", flush=True)
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        folder = Path(scratch)
        with lab(folder, random.Random(seed)) as world:  # noqa: S311 - a replayable churn, not a secret
            workdir = folder / "daemon"
            workdir.mkdir()
            daemon = DaemonProcess(
                world.state_file,
                world.kubeconfig,
                workdir,
                arguments=("--interval", str(options.interval)),
            ).start()
            try:
                until(
                    lambda: daemon.events("pass done"),
                    bool,
                    timeout=START_SECONDS,
                    what="the daemon's first pass",
                    interval=0.1,
                )
                samples, wall = soak(world, daemon, options.passes)
                rss_process = memory_mib(daemon.pid, "VmRSS")
            finally:
                stopped = daemon.stop()
            verdict = judge(samples, options.passes)
            print(
                report(verdict, world, wall=wall, seed=seed, passes=options.passes, interval=options.interval)
            )
            if verdict.missed or stopped != 0:
                kept = Path(tempfile.gettempdir()) / f"soak-{seed}.log"
                shutil.copyfile(daemon.log, kept)
                print(f"the daemon's log: {kept}")
    missed = list(verdict.missed)
    if stopped != 0:
        missed.append(f"the daemon exited {stopped} on SIGTERM")
    print(f"VmRSS at the end (from /proc): {rss_process:.1f} MiB")
    for problem in missed:
        print(f"TARGET MISSED: {problem}")
    if missed:
        print(f"replay: .venv/bin/python -m tests.reliability.soak --passes {options.passes} --seed {seed}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
