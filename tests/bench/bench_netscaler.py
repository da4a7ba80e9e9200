"""Benchmark: the NetScaler driver's pass cost against the simulator, by neighbour count.

For each size N the simulator starts with ``router bgp 500`` and N neighbours peeringd owns,
the BGP feature on, ``ns route-install bgp`` and the desired max-paths, so the matching
Calico snapshot (pure data, no API server) plans nothing. Measured, over one kept session:

- a no-op pass (observe + plan): wall time and configuration lines sent, which must be 0;
- a pass after one node joined (observe + plan + apply): wall time and lines sent, which must
  not depend on N;
- ``observe()`` on the open session against ``close()`` + ``observe()`` (a fresh login).

Run from the repository root: ``.venv/bin/python -m tests.bench.bench_netscaler``.
Exits 1 when a count breaks its rule (a no-op plans or sends something, the 1-node change
sends more lines at a larger N, the kept session logs in again); times are never judged.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from peeringd.adapters import netscaler
from peeringd.core import desired, live, ownership
from peeringd.core.plan import Plan, plan
from peeringd.lab.nssim import (
    BgpRouter,
    JournalEntry,
    Neighbor,
    NetScalerSimulator,
    write_known_hosts,
)
from peeringd.lab.nssim import zebos as simulated_zebos
from tests import support
from tests.bench.common import arguments_parser, measure_sizes, node_address, table, timed, verdict

__all__ = ["main"]

ADC_AS = 500
CLUSTER_AS = support.state().cluster.as_number  # the remote-as of every neighbour
MAX_PATHS = 8
# Lines that read or move between modes; everything else the driver sends changes the config.
# `set cli mode -page OFF` is netmiko's session set-up, sent once per login.
READING_LINES = frozenset({"vtysh", "exit", "set cli mode -page OFF"})


@dataclass(frozen=True)
class Sample:
    """One size's figures; times are medians in milliseconds."""

    size: int
    noop_ms: float
    noop_changes: int
    noop_config_lines: int
    noop_lines_received: int
    join_ms: float
    join_changes: int
    join_config_lines: int
    join_sent: tuple[str, ...]
    reused_logins: int
    reused_observe_ms: float
    fresh_observe_ms: float


def cluster_nodes(count: int) -> tuple[live.Node, ...]:
    return tuple(support.node(f"node-{index:05d}", str(node_address(index))) for index in range(count))


def seeded_router(count: int) -> BgpRouter:
    """``router bgp 500`` with the ``count`` neighbours the first ``count`` nodes want."""
    neighbours = {
        str(address): Neighbor(
            str(address), CLUSTER_AS, ownership.description(support.CLUSTER, f"node-{index:05d}")
        )
        for index in range(count)
        for address in (node_address(index),)
    }
    return BgpRouter(asn=ADC_AS, neighbors=neighbours, max_paths_ebgp=MAX_PATHS, max_paths_ibgp=MAX_PATHS)


def seed(simulator: NetScalerSimulator, count: int) -> None:
    """Give the device the converged config for ``count`` nodes (replaces what is running)."""
    config = simulated_zebos.default_config(simulator.profile.interface_address)
    config.route_install_bgp = True
    config.bgp = seeded_router(count)
    simulator.set_zebos(config)


def desired_state(simulator: NetScalerSimulator, folder: Path) -> desired.PeeringState:
    """The file's state with one ADC: the simulator, trusted by a known_hosts of its own."""
    password = folder / "adc.password"
    password.write_text(simulator.password + "\n")
    known_hosts = folder / "known_hosts"
    write_known_hosts(known_hosts, [simulator])
    entry = support.adc(as_number=ADC_AS, maxPaths={"ebgp": MAX_PATHS, "ibgp": MAX_PATHS})
    entry["ssh"] = {
        "host": simulator.host,
        "port": simulator.port,
        "username": simulator.username,
        "passwordFile": str(password),
        "knownHostsFile": str(known_hosts),
    }
    return support.state(entry)


def calico_side(nodes: tuple[live.Node, ...], state: desired.PeeringState) -> live.CalicoSnapshot:
    """Calico already converged: our BGPPeer at the ADC, so only the device can plan changes."""
    (adc,) = state.adcs
    peer = support.owned_peer(adc.name, str(adc.peer_ip), adc.as_number)
    return support.calico(*nodes, peers=(peer,))


def observe_and_plan(
    device: netscaler.NetScaler, state: desired.PeeringState, nodes: tuple[live.Node, ...]
) -> Plan:
    observed = live.LiveState(calico=calico_side(nodes, state), adcs=(device.observe(),))
    return plan(state, observed)


def config_lines(journal: Sequence[JournalEntry]) -> list[str]:
    """Received lines that change configuration: not reads, mode moves or bare Enters."""
    return [
        entry.text
        for entry in journal
        if entry.text.strip() and entry.text not in READING_LINES and not entry.text.startswith("show ")
    ]


def reconcile(device: netscaler.NetScaler, state: desired.PeeringState, nodes: tuple[live.Node, ...]) -> Plan:
    """One pass on the device: observe, plan, apply."""
    planned = observe_and_plan(device, state, nodes)
    list(device.apply(planned.changes))
    return planned


@dataclass(frozen=True)
class Run:
    """One timed pass: how long it took, what it planned and what the device received."""

    ms: float
    changes: int
    received: tuple[JournalEntry, ...]


def run(simulator: NetScalerSimulator, action: Callable[[], Plan]) -> Run:
    simulator.clear_journal()
    ms, planned = timed(action)
    return Run(ms, len(planned.changes), tuple(simulator.journal()))


def measure(size: int, repeat: int, folder: Path) -> Sample:
    with NetScalerSimulator(host_key_path=folder / "host-key") as simulator:
        simulator.set_feature("BGP", True)
        seed(simulator, size)
        state = desired_state(simulator, folder)
        nodes = cluster_nodes(size)
        joined = cluster_nodes(size + 1)
        device = netscaler.NetScaler(state.adcs[0], timeout=120)
        try:
            device.observe()  # the login, so that every timed pass reuses the session
            no_ops = [run(simulator, lambda: observe_and_plan(device, state, nodes)) for _ in range(repeat)]
            joins = []
            for _ in range(repeat):
                seed(simulator, size)  # back to N neighbours, so each run adds the node again
                joins.append(run(simulator, lambda: reconcile(device, state, joined)))
            logins = simulator.logins
            reused = [timed(device.observe)[0] for _ in range(repeat)]
            reused_logins = simulator.logins - logins
            fresh = []
            for _ in range(repeat):
                device.close()
                fresh.append(timed(device.observe)[0])
        finally:
            device.close()
    return Sample(
        size=size,
        noop_ms=statistics.median(r.ms for r in no_ops),
        noop_changes=max(r.changes for r in no_ops),
        noop_config_lines=max(len(config_lines(r.received)) for r in no_ops),
        noop_lines_received=max(sum(1 for e in r.received if e.text.strip()) for r in no_ops),
        join_ms=statistics.median(r.ms for r in joins),
        join_changes=max(r.changes for r in joins),
        join_config_lines=max(len(config_lines(r.received)) for r in joins),
        join_sent=tuple(config_lines(joins[-1].received)),
        reused_logins=reused_logins,
        reused_observe_ms=statistics.median(reused),
        fresh_observe_ms=statistics.median(fresh),
    )


def sizes_table(samples: Sequence[Sample]) -> str:
    header = (
        "neighbours",
        "no-op ms",
        "no-op changes",
        "no-op config lines",
        "no-op lines received",
        "1-node ms",
        "1-node changes",
        "1-node config lines",
        "observe reused ms",
        "observe fresh login ms",
    )
    rows = [
        (
            f"{s.size}",
            f"{s.noop_ms:.0f}",
            f"{s.noop_changes}",
            f"{s.noop_config_lines}",
            f"{s.noop_lines_received}",
            f"{s.join_ms:.0f}",
            f"{s.join_changes}",
            f"{s.join_config_lines}",
            f"{s.reused_observe_ms:.0f}",
            f"{s.fresh_observe_ms:.0f}",
        )
        for s in samples
    ]
    return table(header, rows)


def problems(samples: Sequence[Sample]) -> list[str]:
    """The line counts that break their rule: a no-op sends nothing, one node costs the same at any N."""
    found = [
        f"{s.size} neighbours: the no-op pass planned {s.noop_changes} changes "
        f"and sent {s.noop_config_lines} configuration lines"
        for s in samples
        if s.noop_changes or s.noop_config_lines
    ]
    if len({(s.join_changes, s.join_config_lines) for s in samples}) > 1:
        found.append("the 1-node change sent a number of lines that depends on the neighbour count")
    found += (
        f"{s.size} neighbours: the reused session logged in {s.reused_logins} times"
        for s in samples
        if s.reused_logins
    )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments_parser("bench_netscaler", __doc__, repeat=5, sizes_of="neighbour").parse_args(argv)
    samples = measure_sizes(
        measure, options.sizes, options.repeat, unit="neighbours", prefix="bench-netscaler-"
    )
    print(sizes_table(samples))
    print(
        f"configuration lines of the 1-node change at {samples[-1].size}: " + ", ".join(samples[-1].join_sent)
    )
    return verdict(problems(samples))


if __name__ == "__main__":
    sys.exit(main())
