"""Benchmark: peeringd beside a naive full push, at 1,000 and 5,000 nodes, in one run.

Everything runs on this machine, on 127.0.0.1: the lab's Kubernetes API server
(in this process, seeded with N Nodes, the default IPPool and BGPConfiguration
``default``), four NetScaler simulators (each in a process of its own, as ADCs
are machines of their own), peeringd (its passes in this process, its daemon as
``peeringd run``) and the yardstick ``tests.bench.naive`` (a full push every
pass, as a process). For each size it prints each figure of issue 12 for both,
with their ratio (naive / peeringd: how many times more the naive way costs):

- the first apply from an empty ADC (N new neighbours, configured and verified),
- a pass that changes nothing inside the daemon, with its Node LISTs, other
  Kubernetes requests, device commands and writes,
- ``plan`` of N nodes, in CPU time,
- a pass over four ADCs against a pass over one, also with every ``show`` answered
  half a second late (devices slower than this machine), and beside them, for those
  passes and the first applies, who spent the machine's CPU meanwhile
  (peeringd, the lab's API server, the simulators, the rest of the machine) and the
  floor that its cores allow: a wall time near that floor, or near peeringd's
  own CPU (its threads share one interpreter lock), is at the machine's limit;
  a wall time far above both is peeringd waiting or running ADCs in turn,
- a node joining until its neighbour is on the ADC, and a saved state file until
  both sides show it (the naive way has no watch: at best one pass),
- the idle daemon's memory and CPU with metrics scraped,

then the cluster writes a minute peeringd causes (its own, measured, and
calico-node's, from the CalicoNodeStatus objects that exist times 60 / their
update period), and once the cold start of ``validate`` and ``--help``.

Run from the repository root: ``.venv/bin/python -m tests.bench.bench_scale``.
Figures are printed, never judged; it exits 1 only when a run did not do what it
measures (a pass that did not converge, a neighbour missing).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peeringd.adapters import statefile
from peeringd.core import ownership
from peeringd.core import status as status_core
from peeringd.core.plan import plan
from peeringd.lab.kubeapi import WRITE_VERBS, KubeApiServer
from peeringd.runtime import logs, reconcile
from tests.bench.common import cold_start, cpu_seconds, machine, memory_mib, node_address, table
from tests.bench.simulators import SimulatorProcess
from tests.bgplab.poll import until
from tests.conftest import CRD_SOURCE, node_object, pool_object
from tests.runtime.daemon_harness import DaemonProcess
from tests.support import REPO

__all__ = ["main"]

GROUP = "crd.projectcalico.org/v1"
CLUSTER = "prod-1"
CLUSTER_AS, ADC_AS = 64512, 500
ADCS = ("adc-1", "adc-2", "adc-3", "adc-4")
POLL_SECONDS = 0.01
SCRAPE_SECONDS = 5.0
# What peeringd run did before: a CalicoNodeStatus for every node, reported every 10 s.
FORMER_UPDATE_SECONDS = 10
CORES = len(os.sched_getaffinity(0))
# How late the simulators answer each show in the passes that stand for devices slower than
# this machine: an assumption, not a measured ADC. There, a pass over four ADCs run in turn
# would take four times the device time; side by side, about once.
LATE_SECONDS = 0.5
API_SERVER_THREAD = "kubeapi"
COSTS_NOTE = (
    "where a pass over ADCs spends its time: peeringd's threads share one interpreter lock, so its\n"
    "CPU is a floor of the wall time as much as all CPU / cores; a wall time near the larger of the\n"
    "two is at the machine's limit, one far above both waits (for devices, or ADCs one after another)"
)

STATE = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster:
  name: {cluster}
  podCIDR: 192.168.0.0/16
  asNumber: {cluster_as}
  nodeToNodeMesh: {mesh}
adcs:
{adcs}policy:
  interval: {interval}s
  maxDeletes: 10
"""
ADC = """\
  - name: {name}
    asNumber: {adc_as}
    peerIP: 10.255.0.{octet}
    maxPaths: {{ebgp: {paths}, ibgp: {paths}}}
    ssh: {{host: {host}, port: {port}, username: {username}, passwordFile: {folder}/{name}.password, knownHostsFile: {folder}/known_hosts}}
"""


@dataclass
class World:
    """The servers of one size, and the files that point at them."""

    size: int
    server: KubeApiServer
    kubeconfig: Path
    adcs: dict[str, SimulatorProcess]
    folder: Path
    nodes: int = 0  # Nodes added so far (node-00000 ...)

    def state_file(
        self, adcs: Sequence[str], *, paths: int = 8, mesh: bool = False, interval: int = 3600
    ) -> Path:
        """A state file for ``adcs`` (written beside the secrets, in a folder of its own)."""
        entries = "".join(
            ADC.format(
                name=name,
                adc_as=ADC_AS,
                octet=index + 1,
                paths=paths,
                host=self.adcs[name].host,
                port=self.adcs[name].port,
                username=self.adcs[name].username,
                folder=self.folder,
            )
            for index, name in enumerate(adcs)
        )
        text = STATE.format(
            cluster=CLUSTER, cluster_as=CLUSTER_AS, mesh=str(mesh).lower(), adcs=entries, interval=interval
        )
        path = self.folder / f"state-{len(adcs)}" / "peering.yaml"
        path.parent.mkdir(exist_ok=True)
        staged = path.with_name(".peering.yaml.swp")  # a scratch name the daemon's watch ignores
        staged.write_text(text)
        os.replace(staged, path)
        return path

    def add_node(self) -> str:
        """One more Node, as a kubelet registers it; returns its BGP address."""
        address = str(node_address(self.nodes))
        self.server.put(node_object(f"node-{self.nodes:05d}", address))
        self.nodes += 1
        return address

    def addresses(self) -> list[str]:
        return [str(node_address(index)) for index in range(self.nodes)]

    def converge(self, names: Sequence[str]) -> None:
        """The ADCs and Calico as peeringd leaves them: neighbours saved, BGPPeers marked."""
        for name in names:
            self.adcs[name].converged(ADC_AS, self.addresses(), CLUSTER, 8)
        for index, name in enumerate(ADCS):
            self.server.delete(self.resource("bgppeers"), name)
            if name in names:
                self.server.put(peer_object(name, f"10.255.0.{index + 1}"))

    def empty(self, names: Sequence[str]) -> None:
        for name in names:
            self.adcs[name].empty()
        for name in ADCS:
            self.server.delete(self.resource("bgppeers"), name)

    def resource(self, plural: str) -> str:
        return f"{plural}.{GROUP.partition('/')[0]}"

    def requests(self, since: int) -> list[Any]:
        return self.server.journal[since:]


def peer_object(name: str, peer_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "BGPPeer",
        "metadata": {
            "name": name,
            "labels": {ownership.MANAGED_BY_LABEL: ownership.MANAGED_BY},
            "annotations": {ownership.CLUSTER_ANNOTATION: CLUSTER},
        },
        "spec": {"peerIP": peer_ip, "asNumber": ADC_AS},
    }


@contextmanager
def world(size: int, folder: Path, simulators: dict[str, SimulatorProcess]) -> Iterator[World]:
    folder.mkdir()
    with KubeApiServer(CRD_SOURCE, "v1") as server:
        server.put(pool_object(GROUP))
        server.put(
            {
                "apiVersion": GROUP,
                "kind": "BGPConfiguration",
                "metadata": {"name": "default"},
                "spec": {"asNumber": CLUSTER_AS, "nodeToNodeMeshEnabled": False},
            }
        )
        (folder / "known_hosts").write_text("".join(f"{s.known_hosts_entry}\n" for s in simulators.values()))
        for name, simulator in simulators.items():
            (folder / f"{name}.password").write_text(simulator.password + "\n")
        here = World(size, server, server.write_kubeconfig(folder / "kubeconfig"), simulators, folder)
        for _ in range(size):
            here.add_node()
        yield here


# peeringd


def timed_pass(loaded: statefile.LoadedState, systems: reconcile.Systems) -> tuple[float, reconcile.Report]:
    started = time.perf_counter()
    report = reconcile.reconcile(loaded, systems)
    return time.perf_counter() - started, report


@dataclass(frozen=True)
class PassCost:
    """One pass's wall time and the CPU seconds spent on the machine meanwhile, by whom."""

    wall: float
    peeringd: float  # this process but the API server's thread: the pass, its SSH transports
    api_server: float  # the lab's API server, a thread of this process (a cluster's runs elsewhere)
    simulators: float  # the simulated ADCs, a process each (a real ADC is a machine of its own)
    others: float  # the rest of the machine: other processes on its cores, kernel work charged to none

    @property
    def floor(self) -> float:
        """The shortest wall time the machine's cores allow for all that CPU."""
        return (self.peeringd + self.api_server + self.simulators + self.others) / CORES

    @staticmethod
    def median(costs: Sequence[PassCost]) -> PassCost:
        """Each figure's median over ``costs``."""
        return PassCost(
            *(
                statistics.median(getattr(cost, f.name) for cost in costs)
                for f in dataclasses.fields(PassCost)
            )
        )


def costed_pass(
    here: World, loaded: statefile.LoadedState, systems: reconcile.Systems
) -> tuple[PassCost, reconcile.Report]:
    """One pass, with who spent CPU during it."""
    simulators = [simulator.pid for simulator in here.adcs.values()]

    def spent() -> tuple[float, float, float, float]:
        simulated = sum(map(cpu_seconds, simulators))
        return busy_seconds(), cpu_seconds(os.getpid()), api_server_seconds(), simulated

    before = spent()
    wall, report = timed_pass(loaded, systems)
    busy, process, api_server, simulated = (end - start for start, end in zip(before, spent(), strict=True))
    cost = PassCost(
        wall=wall,
        peeringd=process - api_server,
        api_server=api_server,
        simulators=simulated,
        others=max(0.0, busy - process - simulated),
    )
    return cost, report


def busy_seconds() -> float:
    """CPU seconds every core of the machine has been busy, from /proc/stat."""
    # cpu  user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    user, nice, system, _, _, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def api_server_seconds() -> float:
    """The CPU seconds of the lab API server's thread (the one this process runs it in)."""
    (thread,) = (thread for thread in threading.enumerate() if thread.name == API_SERVER_THREAD)
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """One side's figures at one size; None where a figure does not apply."""

    first_apply: float | None = None
    noop_pass: float | None = None
    node_lists: float | None = None
    other_requests: float | None = None
    device_commands: float | None = None
    writes: float | None = None
    plan_cpu: float | None = None
    first_apply_4: float | None = None
    noop_pass_1: float | None = None
    noop_pass_4: float | None = None
    late_pass_1: float | None = None
    late_pass_4: float | None = None
    join: float | None = None
    save: float | None = None
    rss: float | None = None
    cpu_percent: float | None = None
    own_writes_per_minute: float | None = None
    # The passes over ADCs (one and four: changing nothing, first apply), with their CPU.
    costs: dict[str, PassCost] = field(default_factory=dict)
    estimated: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def peeringd_passes(here: World, repeat: int, figures: Figures) -> None:
    """First applies and passes in this process: one ADC, then four."""
    for names in (ADCS[:1], ADCS):
        adcs = f"{len(names)} ADC{'s' if len(names) > 1 else ''}"
        here.empty(names)
        loaded = statefile.load(here.state_file(names))
        with reconcile.Systems.connect(loaded, kubeconfig=here.kubeconfig) as systems:
            first, report = costed_pass(here, loaded, systems)
            check(figures, report, here, names, f"first apply over {adcs}")
            timed_pass(loaded, systems)  # the session now stays in vtysh, as in the daemon
            noop = PassCost.median([costed_pass(here, loaded, systems)[0] for _ in range(repeat)])
            for name in names:
                here.adcs[name].answer_shows_late(LATE_SECONDS)
            late = PassCost.median([costed_pass(here, loaded, systems)[0] for _ in range(repeat)])
            for name in names:
                here.adcs[name].answer_shows_late(0)
            figures.costs[f"first apply over {adcs}"] = first
            figures.costs[f"pass over {adcs} (changes nothing, median of {repeat})"] = noop
            figures.costs[f"pass over {adcs}, each show answered {LATE_SECONDS} s late"] = late
            if len(names) == 1:
                figures.first_apply, figures.noop_pass_1, figures.late_pass_1 = first.wall, noop.wall, late.wall
                figures.plan_cpu = plan_cpu(loaded, systems, repeat)
            else:
                figures.first_apply_4, figures.noop_pass_4, figures.late_pass_4 = first.wall, noop.wall, late.wall


def check(figures: Figures, report: reconcile.Report, here: World, names: Sequence[str], what: str) -> None:
    if report.outcome != reconcile.Outcome.CONVERGED:
        figures.problems.append(f"{here.size} nodes, {what}: {report.outcome} {dict(report.errors)}")
    figures.problems += [
        f"{here.size} nodes, {what}: {name} has {count} neighbours"
        for name in names
        if (count := here.adcs[name].neighbours()) != here.nodes
    ]


def plan_cpu(loaded: statefile.LoadedState, systems: reconcile.Systems, repeat: int) -> float:
    """CPU seconds of ``plan`` over what a pass observed, once warm and with what lives frozen
    out of the cyclic collector, as in the daemon after its first pass: this thread's only,
    not the in-process API server's or the SSH transports'."""
    observed, _ = reconcile.observe(loaded, systems)
    plan(loaded.state, observed)
    gc.collect()
    gc.freeze()
    samples = []
    try:
        for _ in range(repeat):
            started = time.thread_time()
            plan(loaded.state, observed)
            samples.append(time.thread_time() - started)
    finally:
        gc.unfreeze()
    return statistics.median(samples)


def peeringd_daemon(here: World, repeat: int, idle: float, figures: Figures) -> None:
    """``peeringd run`` over one converged ADC: passes that change nothing, a node joining, a
    saved file, and the daemon at rest with its metrics scraped."""
    here.converge(ADCS[:1])
    state_file = here.state_file(ADCS[:1])
    workdir = here.folder / "daemon"
    workdir.mkdir()
    daemon = DaemonProcess(state_file, here.kubeconfig, workdir, serve_metrics=True).start()
    try:
        first = daemon.wait_for_event("pass done", timeout=300)[0]
        if first["outcome"] != "converged":
            figures.problems.append(f"{here.size} nodes, daemon's first pass: {first['outcome']}")
        until(lambda: here.server.count("watch", resource="nodes"), bool, timeout=60, what="the node watch")
        noop = [daemon_noop(here, daemon) for _ in range(repeat + 1)][1:]  # the first re-enters vtysh
        figures.noop_pass = statistics.median(seconds for seconds, _, _, _, _ in noop)
        figures.node_lists = max(lists for _, lists, _, _, _ in noop)
        figures.other_requests = max(other for _, _, other, _, _ in noop)
        figures.device_commands = max(commands for _, _, _, commands, _ in noop)
        figures.writes = max(writes for _, _, _, _, writes in noop)
        figures.join = statistics.median(daemon_join(here, daemon) for _ in range(repeat))
        figures.save = statistics.median(
            daemon_save(here, daemon, state_file, paths=4 if index % 2 == 0 else 8, mesh=index % 2 == 0)
            for index in range(repeat)
        )
        since = len(here.server.journal)
        figures.rss, figures.cpu_percent = at_rest(daemon.pid, idle, scrape=daemon.metrics)
        writes = [e for e in here.requests(since) if e.verb in WRITE_VERBS]
        figures.own_writes_per_minute = len(writes) * 60 / idle
    finally:
        if daemon.stop() != 0:
            figures.problems.append(f"{here.size} nodes: the daemon did not stop cleanly; see {daemon.log}")


def daemon_noop(here: World, daemon: DaemonProcess) -> tuple[float, int, int, int, int]:
    """One pass asked for by SIGHUP: its seconds, Node LISTs, other requests, device commands
    and writes (to the cluster and the device)."""
    passes = len(daemon.events("pass done"))
    since = len(here.server.journal)
    here.adcs["adc-1"].clear()
    daemon.signal(signal.SIGHUP)
    done = daemon.wait_for_event("pass done", passes + 1, timeout=300)[passes]
    requests = [e for e in here.requests(since) if e.resource != "caliconodestatuses"]  # the sweep's
    lines = here.adcs["adc-1"].lines()
    node_lists = sum(1 for e in requests if e.verb == "list" and e.resource == "nodes")
    writes = sum(1 for e in requests if e.verb in WRITE_VERBS) + sum(
        1 for line in lines if not line.startswith("show ")
    )
    return float(done["seconds"]), node_lists, len(requests) - node_lists, len(lines), writes


def daemon_join(here: World, daemon: DaemonProcess) -> float:
    """Seconds from a Node's creation until its neighbour is on the ADC."""
    passes = len(daemon.events("pass done"))
    started = time.perf_counter()
    address = here.add_node()
    until(
        lambda: here.adcs["adc-1"].has_neighbour(address),
        bool,
        timeout=120,
        what=address,
        interval=POLL_SECONDS,
    )
    seconds = time.perf_counter() - started
    daemon.wait_for_event("pass done", passes + 1, timeout=300)
    return seconds


def daemon_save(here: World, daemon: DaemonProcess, state_file: Path, *, paths: int, mesh: bool) -> float:
    """Seconds from a saved file (max-paths on the ADC, the mesh in Calico) until both show it."""
    passes = len(daemon.events("pass done"))
    here.adcs["adc-1"].clear()
    started = time.perf_counter()
    here.state_file(ADCS[:1], paths=paths, mesh=mesh)

    def applied() -> bool:
        configuration = here.server.get(here.resource("bgpconfigurations"), "default") or {}
        on_calico = configuration.get("spec", {}).get("nodeToNodeMeshEnabled") == mesh
        return on_calico and f"max-paths ebgp {paths}" in here.adcs["adc-1"].lines()

    until(applied, bool, timeout=120, what="the saved file applied", interval=POLL_SECONDS)
    seconds = time.perf_counter() - started
    daemon.wait_for_event("pass done", passes + 1, timeout=300)
    return seconds


def at_rest(pid: int, seconds: float, *, scrape: Callable[[], object] | None) -> tuple[float, float]:
    """RSS (MiB) at the end and CPU (% of a core) over ``seconds`` of a process at rest,
    scraped every 5 s when ``scrape`` is given."""
    started = time.monotonic()
    cpu = cpu_seconds(pid)
    scrapes = 0
    while (now := time.monotonic()) < started + seconds:
        if scrape is not None and now >= started + scrapes * SCRAPE_SECONDS:
            scrape()
            scrapes += 1
        time.sleep(min(SCRAPE_SECONDS, started + seconds - now) if scrape is None else 0.2)
    elapsed = time.monotonic() - started
    return memory_mib(pid, "VmRSS"), (cpu_seconds(pid) - cpu) / elapsed * 100


# the naive way


class NaiveProcess:
    """``python -m tests.bench.naive`` over some ADCs, and the passes it reported."""

    def __init__(self, here: World, names: Sequence[str], interval: float) -> None:
        adcs = [
            ",".join(
                map(
                    str,
                    (
                        name,
                        ADC_AS,
                        f"10.255.0.{ADCS.index(name) + 1}",
                        here.adcs[name].host,
                        here.adcs[name].port,
                        here.adcs[name].username,
                        here.adcs[name].password,
                        here.folder / "known_hosts",
                    ),
                )
            )
            for name in names
        ]
        self.log = here.folder / f"naive-{len(names)}.log"
        command = [sys.executable, "-m", "tests.bench.naive", "--kubeconfig", str(here.kubeconfig)]
        command += [f"--adc={adc}" for adc in adcs] + ["--interval", str(interval)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def passes(self) -> list[float]:
        return [
            float(line.split()[2])
            for line in self.log.read_text().splitlines()
            if line.startswith("pass done")
        ]

    def wait(self, count: int, timeout: float) -> list[float]:
        def reported() -> list[float]:
            if self.process.poll() is not None:
                raise RuntimeError(f"the naive process ended: {self.log.read_text()[-2000:]}")
            return self.passes()

        return until(
            reported, lambda found: len(found) >= count, timeout=timeout, what=f"{count} naive passes"
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def naive(here: World, idle: float, four_adcs_up_to: int, figures: Figures, timeout: float) -> None:
    """The yardstick as a process: a first push to an empty ADC, a second pass over the same
    state (a pass that changes nothing changes nothing only for peeringd), then at rest."""
    here.empty(ADCS)
    interval = idle + 15
    process = NaiveProcess(here, ADCS[:1], interval)
    try:
        (first,) = process.wait(1, timeout)
        since = len(here.server.journal)
        here.adcs["adc-1"].clear()
        second = process.wait(2, timeout + interval)[1]
        requests = here.requests(since)
        lines = here.adcs["adc-1"].lines()
        figures.rss, figures.cpu_percent = at_rest(process.process.pid, idle, scrape=None)
    finally:
        process.stop()
    figures.first_apply, figures.noop_pass = first, second
    figures.noop_pass_1 = second
    figures.node_lists = sum(1 for e in requests if e.verb == "list" and e.resource == "nodes")
    figures.other_requests = len(requests) - figures.node_lists
    figures.device_commands = len(lines)
    figures.writes = sum(1 for e in requests if e.verb in WRITE_VERBS) + sum(
        1 for line in lines if line.startswith(("neighbor", "router bgp"))
    )
    # It has no watch: a joining node or a saved file waits for a pass, at best one whole pass.
    figures.join = figures.save = second
    figures.estimated |= {"join", "save"}
    # Its own writes: the BGPPeer it rewrites each pass, with a pass every 60 s.
    figures.own_writes_per_minute = sum(1 for e in requests if e.verb in WRITE_VERBS) * 60 / (60 + second)
    if here.size <= four_adcs_up_to:
        process = NaiveProcess(here, ADCS, 3600)
        try:
            (figures.noop_pass_4,) = process.wait(1, 4 * timeout)
        finally:
            process.stop()
    else:
        figures.noop_pass_4 = 4 * second  # one ADC after another
        figures.estimated |= {"noop_pass_4", "first_apply_4"}
    figures.first_apply_4 = figures.noop_pass_4  # a full push costs the same from empty


# printing


ROWS: tuple[tuple[str, str, str], ...] = (
    ("first_apply", "first apply, empty ADC: N neighbours configured and verified", "s"),
    ("noop_pass", "pass that changes nothing, inside the daemon", "s"),
    ("node_lists", "  Node LISTs in that pass (watch open)", ""),
    ("other_requests", "  other Kubernetes requests in that pass", ""),
    ("device_commands", "  device commands in that pass, per ADC", ""),
    ("writes", "  writes in that pass (cluster and device)", ""),
    ("plan_cpu", "plan of N nodes, CPU", "ms"),
    ("noop_pass_1", "pass over 1 ADC (changes nothing)", "s"),
    ("noop_pass_4", "pass over 4 ADCs (changes nothing)", "s"),
    ("first_apply_4", "first apply over 4 empty ADCs", "s"),
    ("late_pass_1", f"pass over 1 ADC answering each show {LATE_SECONDS} s late", "s"),
    ("late_pass_4", f"pass over 4 ADCs answering each show {LATE_SECONDS} s late", "s"),
    ("join", "node joins -> its neighbour on the ADC, median", "s"),
    ("save", "state file saved -> both sides applied, median", "s"),
    ("rss", "idle daemon RSS (peeringd: metrics on, scraped)", "MiB"),
    ("cpu_percent", "idle daemon CPU", "% core"),
)


def shown(value: float | None, unit: str, estimated: bool) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        text = f"{value * 1000:.1f}"
    elif unit == "s":
        text = f"{value:.3f}"
    elif unit in {"MiB", "% core"}:
        text = f"{value:.1f}" if unit == "MiB" else f"{value:.2f}"
    else:
        text = f"{value:.0f}" if value == int(value) else f"{value:.2f}"
    return f"{text}{' est.' if estimated else ''}"


def figures_table(size: int, ours: Figures, theirs: Figures) -> str:
    rows = []
    for key, label, unit in ROWS:
        mine, naive_value = getattr(ours, key), getattr(theirs, key)
        ratio = "-"
        if mine and naive_value is not None:
            ratio = f"{naive_value / mine:.1f}x"
        rows.append(
            (
                label,
                unit,
                shown(mine, unit, key in ours.estimated),
                shown(naive_value, unit, key in theirs.estimated),
                ratio,
            )
        )
    header = (f"{size} nodes", "unit", "peeringd", "naive push", "naive/peeringd")
    lines = [header, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def costs_table(size: int, figures: Figures) -> str:
    """The passes over ADCs, each with who spent the machine's CPU during it."""
    header = (
        f"{size} nodes, seconds",
        "wall",
        "peeringd CPU",
        "API server CPU",
        "simulators CPU",
        "rest of the machine CPU",
        f"floor: all CPU / {CORES} cores",
    )
    width = max(len(label) for label in [header[0], *figures.costs])
    rows = [
        (label.ljust(width), *(f"{value:.3f}" for value in dataclasses.astuple(cost)), f"{cost.floor:.3f}")
        for label, cost in figures.costs.items()
    ]
    return table((header[0].ljust(width), *header[1:]), rows)


def writes_table(results: Sequence[tuple[int, Figures, Figures]]) -> str:
    header = (
        "nodes",
        "peeringd run: own",
        "calico-node's",
        "after peeringd status",
        "before (run made them)",
        "naive (60 s passes): own",
    )
    rows = []
    for size, ours, theirs in results:
        period = status_core.update_period(size)
        rows.append(
            (
                f"{size}",
                shown(ours.own_writes_per_minute, "", False),
                "0 (no CalicoNodeStatus)",
                f"<= {size * 60 / period:.0f} ({size} objects, {period} s period, 15 min)",
                f"<= {size * 60 / FORMER_UPDATE_SECONDS:.0f} ({size} objects, {FORMER_UPDATE_SECONDS} s period, always)",
                shown(theirs.own_writes_per_minute, "", False),
            )
        )
    return table(header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[1000, 5000],
        help="node counts",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="samples per peeringd figure; medians are shown"
    )
    parser.add_argument("--idle", type=float, default=30.0, help="seconds each daemon is watched at rest")
    parser.add_argument(
        "--naive-four-adcs-up-to",
        type=int,
        default=1000,
        help="node count up to which the naive pass over four ADCs is measured; above, 4 x one ADC (est.)",
    )
    parser.add_argument(
        "--peeringd-only",
        action="store_true",
        help="skip the naive push (its column shows n/a): peeringd's figures in minutes, not hours",
    )
    options = parser.parse_args(argv)
    logs.configure(sys.stderr, level="warning")  # the passes measured here log only what went wrong
    print(machine(), flush=True)
    results: list[tuple[int, Figures, Figures]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        simulators = {name: SimulatorProcess(folder, name) for name in ADCS}
        for simulator in simulators.values():
            stack.callback(simulator.stop)
        for size in options.sizes:
            ours, theirs = Figures(), Figures()
            with world(size, folder / f"size-{size}", simulators) as here:
                print(f"measuring {size} nodes: peeringd's passes", file=sys.stderr, flush=True)
                peeringd_passes(here, options.repeat, ours)
                print(f"measuring {size} nodes: peeringd run", file=sys.stderr, flush=True)
                peeringd_daemon(here, options.repeat, options.idle, ours)
                if not options.peeringd_only:
                    print(f"measuring {size} nodes: the naive push", file=sys.stderr, flush=True)
                    naive(here, options.idle, options.naive_four_adcs_up_to, theirs, timeout=600 + size * 0.2)
            results.append((size, ours, theirs))
            print(figures_table(size, ours, theirs), flush=True)
            print(flush=True)
            print(COSTS_NOTE)
            print(costs_table(size, ours), flush=True)
            print(flush=True)
    print(
        "cluster writes a minute that peeringd causes (own: measured at rest; calico-node's: objects x 60 / period)"
    )
    print(writes_table(results))
    print()
    for label, seconds in cold_start(options.repeat):
        print(f"cold start, {label}: {seconds:.2f} s (whole process, median of {options.repeat})")
    problems = [problem for _, ours, theirs in results for problem in ours.problems + theirs.problems]
    for problem in problems:
        print(f"NOT MEASURED AS MEANT: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
