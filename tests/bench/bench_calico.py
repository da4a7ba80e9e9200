"""Benchmark: the Calico adapter's observe cost against the lab's API server, by node count.

For each size N the server holds N Nodes (each with its ``projectcalico.org/IPv4Address``
annotation), the default IPPool and one BGPPeer peeringd owns, so a desired state with one
ADC plans nothing. After one warm-up observe (discovery happens once per connection) it
measures the requests one no-op observe makes, which must not depend on N, and the median
wall time of an observe and of a no-op pass (observe + the pure plan, the ADC's neighbours
already matching the nodes). The API server runs in this process, so the peak RSS includes
its store.

Run from the repository root: ``.venv/bin/python -m tests.bench.bench_calico``.
Exits 1 when the request count depends on N; times are reported, never judged.
"""

from __future__ import annotations

import resource
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from peeringd.adapters import calico
from peeringd.core import desired, live, nodes, ownership
from peeringd.core.plan import plan
from peeringd.lab.kubeapi import KubeApiServer
from tests import support
from tests.bench.common import arguments_parser, measure_sizes, node_address, table, timed, verdict
from tests.conftest import CRD_SOURCE, node_object, pool_object

__all__ = ["main"]

GROUP = "crd.projectcalico.org/v1"


@dataclass(frozen=True)
class Sample:
    """One size's figures; times are medians in milliseconds."""

    size: int
    requests: tuple[tuple[str, str], ...]
    observe_ms: float
    pass_ms: float
    changes: int
    peak_rss_mib: float


def peer_object(state: desired.PeeringState) -> dict[str, object]:
    """The BGPPeer peeringd would have written for the state's one ADC."""
    (adc,) = state.adcs
    return {
        "apiVersion": GROUP,
        "kind": "BGPPeer",
        "metadata": {
            "name": adc.name,
            "labels": {ownership.MANAGED_BY_LABEL: ownership.MANAGED_BY},
            "annotations": {ownership.CLUSTER_ANNOTATION: state.cluster.name},
        },
        "spec": {"peerIP": str(adc.peer_ip), "asNumber": adc.as_number},
    }


def seeded_server(size: int, state: desired.PeeringState) -> KubeApiServer:
    server = KubeApiServer(CRD_SOURCE, "v1")
    server.put(pool_object(GROUP, str(state.cluster.pod_cidr)))
    server.put(peer_object(state))
    for index in range(size):
        server.put(node_object(f"node-{index:05d}", str(node_address(index))))
    return server


def converged_device(snapshot: live.CalicoSnapshot, state: desired.PeeringState) -> live.AdcSnapshot:
    """The ADC as a previous pass left it: one owned neighbour per node, settings as wanted."""
    (adc,) = state.adcs
    speakers, _ = nodes.speakers(snapshot.nodes, state.cluster.as_number)
    return support.device(
        adc.name,
        router_as=adc.as_number,
        route_install=adc.install_routes,
        neighbours=tuple(
            live.Neighbour(
                address=speaker.address,
                remote_as=speaker.as_number,
                description=ownership.description(state.cluster.name, speaker.node),
            )
            for speaker in speakers
        ),
    )


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(size: int, repeat: int, folder: Path) -> Sample:
    state = support.state()
    with seeded_server(size, state) as server:
        kubeconfig = server.write_kubeconfig(folder / f"kubeconfig-{size}")
        with calico.Calico.connect(kubeconfig) as side:
            device = converged_device(side.observe(), state)  # the warm-up: discovery happens here
            server.clear_journal()
            side.observe()
            requests = tuple((entry.verb, entry.resource or entry.path) for entry in server.journal)
            observe_times = [timed(side.observe)[0] for _ in range(repeat)]
            passes = [
                timed(lambda: plan(state, live.LiveState(calico=side.observe(), adcs=(device,))))
                for _ in range(repeat)
            ]
    return Sample(
        size=size,
        requests=requests,
        observe_ms=statistics.median(observe_times),
        pass_ms=statistics.median(ms for ms, _ in passes),
        changes=max(len(planned.changes) for _, planned in passes),
        peak_rss_mib=peak_rss_mib(),
    )


def sizes_table(samples: Sequence[Sample]) -> str:
    header = ("nodes", "requests", "observe ms", "observe+plan ms", "changes", "peak RSS MiB")
    rows = [
        (
            f"{s.size}",
            f"{len(s.requests)}",
            f"{s.observe_ms:.1f}",
            f"{s.pass_ms:.1f}",
            f"{s.changes}",
            f"{s.peak_rss_mib:.0f}",
        )
        for s in samples
    ]
    return table(header, rows)


def problems(samples: Sequence[Sample]) -> list[str]:
    """The figures that break their rule: the requests are the same at any N, a no-op plans nothing."""
    found = [f"{s.size} nodes: the no-op pass planned {s.changes} changes" for s in samples if s.changes]
    if len({s.requests for s in samples}) > 1:
        counts = ", ".join(f"{s.size} nodes: {len(s.requests)}" for s in samples)
        found.append(f"the requests of one observe depend on the node count ({counts})")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments_parser("bench_calico", __doc__, repeat=9, sizes_of="node").parse_args(argv)
    samples = measure_sizes(measure, options.sizes, options.repeat, unit="nodes", prefix="bench-calico-")
    print(sizes_table(samples))
    print("requests of one observe: " + ", ".join(f"{verb} {what}" for verb, what in samples[0].requests))
    print(f"peak RSS at the end: {peak_rss_mib():.0f} MiB (this process, API server included)")
    return verdict(problems(samples))


if __name__ == "__main__":
    sys.exit(main())
