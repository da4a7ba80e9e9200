"""Benchmark: the daemon as a real process, from a file save to both sides applied, and at rest.

``peeringd run`` runs against the lab's API server (three nodes, the default IPPool, like a
fresh cluster) and a NetScaler simulator, both in this process on 127.0.0.1. Measured:

- save to applied: once the daemon converged, the state file is replaced by rename with the
  ADC's ``asNumber`` flipped between 500 and 501 (``policy.allowASChange: true``), which
  changes the ADC's ``router bgp`` and the Calico BGPPeer's ``asNumber``. The time runs from
  the rename until both the simulator's running config and the API server's BGPPeer show the
  new AS (polled every 10 ms). The daemon's log timestamps split it: the file watch (its
  debounce and the reload) up to the pass request, then the pass up to ``pass done``.
- at rest: after a fresh daemon converged, its RSS (``VmRSS``) and CPU time (``utime`` +
  ``stime``) from /proc over an idle window, first without ``--metrics-address``, then with
  it and ``/metrics`` scraped every 5 s as Prometheus would. ``policy.interval`` is 60 s, or
  longer when the window is, so that no scheduled pass falls inside it.

Run from the repository root: ``.venv/bin/python -m tests.bench.bench_daemon``.
Exits 1 when a pass does not converge or a pass runs in an idle window; times are never judged.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from peeringd.lab.kubeapi import KubeApiServer
from peeringd.lab.nssim import NetScalerSimulator
from tests.bench.common import arguments_parser, cpu_seconds, memory_mib, table
from tests.bgplab.poll import until
from tests.conftest import CRD_SOURCE, Cluster, pool_object
from tests.runtime.daemon_harness import DaemonProcess, state_text, write_secrets

__all__ = ["main"]

GROUP = "crd.projectcalico.org/v1"
NODES = (("node-1", "10.0.0.11"), ("node-2", "10.0.0.12"), ("node-3", "10.0.0.13"))
ADC_AS, OTHER_AS = 500, 501
POLL_SECONDS = 0.01
SCRAPE_SECONDS = 5.0


@dataclass
class Lab:
    """The servers one daemon runs against, and its state file."""

    cluster: Cluster
    adc: NetScalerSimulator
    secrets: Path
    state_file: Path
    interval: int

    def text(self, as_number: int) -> str:
        """The state file: state_text's one ADC at ``as_number``, AS changes allowed."""
        text = state_text(self.adc, self.secrets, interval=f"{self.interval}s")
        return text.replace(f"asNumber: {ADC_AS}", f"asNumber: {as_number}") + "  allowASChange: true\n"

    def adc_as(self) -> int | None:
        """The ADC's AS once its ``router bgp`` holds every node again, else None."""
        router = self.adc.running().zebos.bgp
        if router is None or sorted(router.neighbors) != [address for _, address in NODES]:
            return None
        return router.asn

    def calico_as(self) -> int | None:
        peer = self.cluster.server.get(self.cluster.resource("bgppeers"), "adc-1")
        return None if peer is None else int(peer["spec"]["asNumber"])


@contextmanager
def lab(folder: Path, interval: int) -> Iterator[Lab]:
    """Fresh servers seeded like the tests' ``cluster_factory`` and ``world`` fixtures do."""
    folder.mkdir()
    with (
        KubeApiServer(CRD_SOURCE, "v1") as server,
        NetScalerSimulator(host_key_path=folder / "host-key") as adc,
    ):
        cluster = Cluster(server, server.write_kubeconfig(folder / "kubeconfig"), GROUP)
        server.put(pool_object(GROUP))
        for name, address in NODES:
            cluster.add_node(name, address)
        # A folder of its own: the daemon watches the state file's folder, not just the file.
        (folder / "state").mkdir()
        state_file = folder / "state" / "peering.yaml"
        world = Lab(cluster, adc, write_secrets(adc, folder / "secrets"), state_file, interval)
        world.state_file.write_text(world.text(ADC_AS))
        yield world


@dataclass
class Daemon(DaemonProcess):
    """The harness's daemon, waiting for its passes."""

    def pass_done(self, passes: int = 1) -> dict[str, Any]:
        """The ``passes``-th ``pass done``, once logged; its outcome is checked by the caller."""
        return self.wait_for_event("pass done", passes, timeout=60)[passes - 1]


@contextmanager
def running(world: Lab, workdir: Path, *, serve_metrics: bool) -> Iterator[Daemon]:
    workdir.mkdir()
    daemon = Daemon(world.state_file, world.cluster.kubeconfig, workdir, serve_metrics=serve_metrics)
    daemon.start()
    try:
        yield daemon
    finally:
        if daemon.stop() != 0:
            print(f"the daemon did not stop cleanly; its log: {daemon.log}", file=sys.stderr)


def logged_at(record: dict[str, Any]) -> float:
    """The Unix time of a log record (structlog's ISO timestamp, UTC)."""
    return datetime.fromisoformat(record["timestamp"]).timestamp()


@dataclass(frozen=True)
class Save:
    """One save: milliseconds from the rename to each moment, and what the pass did."""

    adc_seen: float
    calico_seen: float
    requested: float  # the daemon logged "pass requested" for the file
    first_applied: float  # the first "change applied": connecting, observing and planning are done
    adc_applied: float  # the last "change applied" of each side
    adc_saved: float  # the save's "change applied": `save ns config` returned
    calico_applied: float
    pass_done: float
    outcome: str
    changes: int
    logins: int  # SSH logins the ADC saw
    requests: int  # requests the API server saw
    discovery: int  # of them, discovery (no resource)

    @property
    def both_seen(self) -> float:
        return max(self.adc_seen, self.calico_seen)

    @property
    def pass_ms(self) -> float:
        return self.pass_done - self.requested


def save(world: Lab, daemon: Daemon, as_number: int) -> Save:
    """Replace the state file by rename, as editors and ``git checkout`` do, and time the rest."""
    staged = world.state_file.with_name(".peering.yaml.swp")  # a scratch name the watch ignores
    staged.write_text(world.text(as_number))
    logged = len(daemon.events())
    passes = len(daemon.events("pass done"))
    logins = world.adc.logins
    journal = len(world.cluster.server.journal)
    os.replace(staged, world.state_file)
    written = time.time()
    seen: dict[str, float] = {}

    def sides() -> dict[str, float]:
        for side, observe in (("adc", world.adc_as), ("calico", world.calico_as)):
            if side not in seen and observe() == as_number:
                seen[side] = time.time()
        return seen

    until(
        sides,
        lambda found: len(found) == 2,
        timeout=60,
        what=f"AS {as_number} on both sides",
        interval=POLL_SECONDS,
    )
    done = daemon.pass_done(passes + 1)
    records = daemon.events()[logged:]
    requests = world.cluster.server.journal[journal:]

    def since(event: str, which: int = -1, **fields: str) -> float:
        """Milliseconds from the rename to the ``which``-th record of ``event`` with ``fields``."""
        matching = [r for r in records if r["event"] == event and fields.items() <= r.items()]
        return (logged_at(matching[which]) - written) * 1000 if matching else float("nan")

    return Save(
        adc_seen=(seen["adc"] - written) * 1000,
        calico_seen=(seen["calico"] - written) * 1000,
        requested=since("pass requested", reason="state file changed"),
        first_applied=since("change applied", 0),
        adc_applied=since("change applied", side="adc"),
        adc_saved=since("change applied", object="saved configuration"),
        calico_applied=since("change applied", side="calico"),
        pass_done=(logged_at(done) - written) * 1000,
        outcome=done["outcome"],
        changes=done["changes"],
        logins=world.adc.logins - logins,
        requests=len(requests),
        discovery=sum(entry.resource is None for entry in requests),
    )


@dataclass(frozen=True)
class Rest:
    """The daemon over an idle window: memory in MiB, CPU seconds of all its threads."""

    label: str
    seconds: float
    rss_start: float
    rss_end: float
    rss_peak: float  # VmHWM: the highest RSS since the process started
    cpu_seconds: float
    passes: int
    scrapes: int

    @property
    def cpu_percent(self) -> float:
        return self.cpu_seconds / self.seconds * 100


def rest(daemon: Daemon, seconds: float, label: str, *, scrape: bool) -> Rest:
    """Watch the daemon for ``seconds``, scraping /metrics every 5 s (from the start) if asked."""
    passes = len(daemon.events("pass done"))
    started = time.monotonic()
    rss_start, cpu_start = memory_mib(daemon.pid, "VmRSS"), cpu_seconds(daemon.pid)
    scrapes = 0
    while (now := time.monotonic()) < started + seconds:
        if scrape and now >= started + scrapes * SCRAPE_SECONDS:
            daemon.metrics()
            scrapes += 1
        upcoming = started + scrapes * SCRAPE_SECONDS if scrape else float("inf")
        time.sleep(max(0.0, min(upcoming, started + seconds) - time.monotonic()))
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(daemon.pid) - cpu_start
    return Rest(
        label=label,
        seconds=elapsed,
        rss_start=rss_start,
        rss_end=memory_mib(daemon.pid, "VmRSS"),
        rss_peak=memory_mib(daemon.pid, "VmHWM"),
        cpu_seconds=cpu,
        passes=len(daemon.events("pass done")) - passes,
        scrapes=scrapes,
    )


SAVE_COLUMNS: tuple[tuple[str, Callable[[Save], float]], ...] = (
    ("both seen ms", lambda s: s.both_seen),
    ("watch ms", lambda s: s.requested),
    ("pass ms", lambda s: s.pass_ms),
    ("1st change ms", lambda s: s.first_applied),
    ("ADC applied ms", lambda s: s.adc_applied),
    ("ADC saved ms", lambda s: s.adc_saved),
    ("Calico applied ms", lambda s: s.calico_applied),
    ("pass done ms", lambda s: s.pass_done),
    ("ADC seen ms", lambda s: s.adc_seen),
    ("Calico seen ms", lambda s: s.calico_seen),
    ("changes", lambda s: s.changes),
    ("logins", lambda s: s.logins),
    ("API requests", lambda s: s.requests),
    ("discovery", lambda s: s.discovery),
)


def saves_table(saves: Sequence[Save], targets: Sequence[int]) -> str:
    """One row per save, then the median of each column."""
    rows = [
        (f"{index}", f"{target}", *(f"{figure(one):.0f}" for _, figure in SAVE_COLUMNS))
        for index, (one, target) in enumerate(zip(saves, targets, strict=True), start=1)
    ]
    medians = (f"{statistics.median(figure(one) for one in saves):.0f}" for _, figure in SAVE_COLUMNS)
    rows.append(("median", "", *medians))
    return table(("save", "AS", *(name for name, _ in SAVE_COLUMNS)), rows)


def rest_table(windows: Sequence[Rest]) -> str:
    header = (
        "daemon",
        "window s",
        "RSS start MiB",
        "RSS end MiB",
        "peak RSS MiB",
        "CPU s",
        "CPU % of a core",
        "passes",
        "scrapes",
    )
    rows = [
        (
            w.label,
            f"{w.seconds:.0f}",
            f"{w.rss_start:.1f}",
            f"{w.rss_end:.1f}",
            f"{w.rss_peak:.1f}",
            f"{w.cpu_seconds:.2f}",
            f"{w.cpu_percent:.2f}",
            f"{w.passes}",
            f"{w.scrapes}",
        )
        for w in windows
    ]
    return table(header, rows)


def problems(
    first_passes: Sequence[dict[str, Any]], saves: Sequence[Save], windows: Sequence[Rest]
) -> list[str]:
    """What makes the figures meaningless: a pass that did not converge, a pass while idle."""
    found = [f"the first pass ended {p['outcome']}" for p in first_passes if p["outcome"] != "converged"]
    found += [
        f"save {i}: the pass ended {one.outcome}"
        for i, one in enumerate(saves, 1)
        if one.outcome != "converged"
    ]
    found += [f"{w.label}: {w.passes} passes ran in the idle window" for w in windows if w.passes]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments_parser("bench_daemon", __doc__, repeat=6)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of each idle window (default: 30)")
    options = parser.parse_args(argv)
    if options.repeat < 1 or options.idle <= 0:
        parser.error("--repeat and --idle must be positive")
    interval = max(60, int(2 * options.idle))
    targets = [OTHER_AS if index % 2 == 0 else ADC_AS for index in range(options.repeat)]
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as scratch:
        folder = Path(scratch)
        with (
            lab(folder / "plain", interval) as world,
            running(world, folder / "plain-daemon", serve_metrics=False) as daemon,
        ):
            first = [daemon.pass_done()]
            windows = [rest(daemon, options.idle, "no metrics", scrape=False)]
            print("measured the idle daemon without metrics", file=sys.stderr, flush=True)
            rss_before = memory_mib(daemon.pid, "VmRSS")
            saves = [save(world, daemon, target) for target in targets]
            rss_after = memory_mib(daemon.pid, "VmRSS")
            print(f"measured {len(saves)} saves", file=sys.stderr, flush=True)
        with (
            lab(folder / "scraped", interval) as world,
            running(world, folder / "scraped-daemon", serve_metrics=True) as daemon,
        ):
            first.append(daemon.pass_done())
            windows.append(rest(daemon, options.idle, "metrics, scraped", scrape=True))
            print("measured the idle daemon with metrics", file=sys.stderr, flush=True)
    print(
        "save to both sides applied, in ms after the rename: 'seen' by polling every "
        f"{POLL_SECONDS * 1000:.0f} ms, the rest from the daemon's log; watch = rename to "
        "'pass requested', pass = 'pass requested' to 'pass done'; logins = the ADC's SSH logins"
    )
    print(saves_table(saves, targets))
    print(f"RSS before and after the saves: {rss_before:.1f} -> {rss_after:.1f} MiB")
    print()
    print(f"at rest after converging (policy.interval {interval}s):")
    print(rest_table(windows))
    found = problems(first, saves, windows)
    for problem in found:
        print(f"NOT MEASURED AS MEANT: {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
