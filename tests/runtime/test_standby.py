"""Two daemons, one Lease: one applies, the other takes over, never both write.

Real ``peeringd run --leader-elect`` processes against the lab's API server and a NetScaler
simulator, as on two management hosts (here two work directories, each with its own log,
lock and notify socket). Each request to the API server names its daemon in its User-Agent,
so the journal shows who wrote what.
"""

from __future__ import annotations

import datetime
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from peeringd.lab.kubeapi import WRITE_VERBS
from peeringd.lab.nssim import NetScalerSimulator
from tests.bgplab.poll import until
from tests.conftest import Cluster
from tests.runtime import daemon_harness
from tests.runtime.daemon_harness import DaemonProcess, NotifySocket

LEASES = "leases.coordination.k8s.io"
_USER_AGENT = re.compile(r"^peeringd/\S+ \((?P<identity>[^)]+)\)$")


@dataclass
class World:
    cluster: Cluster
    adc: NetScalerSimulator
    state_file: Path
    secrets: Path

    def max_paths_ebgp(self) -> int | None:
        router = self.adc.running().zebos.bgp
        return router.max_paths_ebgp if router else None

    def text(self, **fields: Any) -> str:
        return daemon_harness.state_text(self.adc, self.secrets, **fields)

    def both_sides_changed(self) -> str:
        """The state file with a change for each side: max-paths on the ADC, the mesh in Calico."""
        return self.text(ebgp=4).replace("asNumber: 64512", "asNumber: 64512\n  nodeToNodeMesh: false")

    def mesh(self) -> bool | None:
        configuration = self.cluster.server.get(self.cluster.resource("bgpconfigurations"), "default")
        return None if configuration is None else configuration["spec"].get("nodeToNodeMeshEnabled")

    def writes(self, since: int = 0, until: int | None = None) -> list[tuple[str, str, str | None]]:
        """Every write to the API server (but the Lease's) in journal entries ``since`` to
        ``until``: (writer's identity, verb, resource)."""
        found: list[tuple[str, str, str | None]] = []
        for entry in self.cluster.server.journal[since:until]:
            if entry.verb in WRITE_VERBS and entry.resource not in (None, "leases"):
                match = _USER_AGENT.match(entry.user_agent or "")
                found.append(
                    (match["identity"] if match else str(entry.user_agent), entry.verb, entry.resource)
                )
        return found


@dataclass
class Host:
    """One management host's daemon and its notify socket."""

    daemon: DaemonProcess
    notify: NotifySocket
    identities: list[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        """The identity the daemon campaigns under, from its first event."""
        if not self.identities:
            (started,) = self.daemon.wait_for_event("leader election")
            self.identities.append(started["identity"])
        return self.identities[0]

    def leads(self) -> bool:
        return bool(self.daemon.events("became the leader"))

    def statuses(self) -> list[str]:
        return [message["STATUS"] for message in self.notify.received() if "STATUS" in message]

    def passes(self) -> list[dict[str, Any]]:
        return self.daemon.events("pass done")


@pytest.fixture
def world(cluster: Cluster, tmp_path: Path) -> Iterator[World]:
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as adc:
        secrets = daemon_harness.write_secrets(adc, tmp_path / "secrets")
        state_file = tmp_path / "peering.yaml"
        state_file.write_text(daemon_harness.state_text(adc, secrets))
        yield World(cluster, adc, state_file, secrets)


@pytest.fixture
def hosts(world: World, tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """Start ``peeringd run --leader-elect [ARGUMENTS]`` as on host NAME; killed after the test."""
    started: list[Host] = []

    def start(name: str, *arguments: str) -> Host:
        workdir = tmp_path / name
        workdir.mkdir()
        notify = NotifySocket(workdir / "notify.sock")
        daemon = DaemonProcess(
            world.state_file,
            world.cluster.kubeconfig,
            workdir,
            environment={"NOTIFY_SOCKET": str(notify.path)},
            arguments=("--leader-elect", *arguments),
        ).start()
        started.append(Host(daemon, notify))
        return started[-1]

    yield start
    for host in started:
        if host.daemon.process is not None and host.daemon.process.poll() is None:
            host.daemon.process.kill()
            host.daemon.process.wait(10)
        host.notify.close()


def converged(host: Host, timeout: float = 30) -> None:
    until(
        lambda: [e for e in host.passes() if e["outcome"] == "converged"],
        bool,
        timeout=timeout,
        what=f"a converged pass of {host.daemon.workdir.name}",
    )


def stored_holder(world: World) -> str | None:
    lease = world.cluster.server.get(LEASES, "peeringd", "kube-system")
    return None if lease is None else lease["spec"].get("holderIdentity")


def micro_time_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_one_applies_and_the_standby_takes_over_from_a_killed_leader(
    world: World, hosts: Callable[..., Host]
) -> None:
    """Exactly one applies; after a SIGKILL the other converges a change within 20 s; the old
    one, restarted, stands by; at no time do two daemons write."""
    first, second = hosts("host-a"), hosts("host-b")
    (active,) = until(
        lambda: [host for host in (first, second) if host.leads()], bool, timeout=30, what="a leader"
    )
    standby = second if active is first else first
    converged(active)
    until(standby.passes, bool, timeout=30, what="the standby's first pass")

    assert standby.leads() is False
    assert standby.daemon.events("change applied") == []
    assert {writer for writer, _, _ in world.writes()} == {active.identity}
    assert (active.daemon.metrics()["peeringd_leader"], standby.daemon.metrics()["peeringd_leader"]) == (1, 0)
    assert stored_holder(world) == active.identity
    until(
        standby.statuses,
        lambda found: any(s.startswith(f"standby, leader is {active.identity}: ") for s in found),
        timeout=10,
        what="the standby's status line naming the leader",
    )
    assert any(s.startswith("leader (lease kube-system/peeringd): converged") for s in active.statuses())

    killed_at = len(world.cluster.server.journal)
    assert active.daemon.process is not None
    active.daemon.process.kill()
    active.daemon.process.wait(10)
    killed = time.monotonic()
    world.state_file.write_text(world.both_sides_changed())

    until(
        lambda: (world.max_paths_ebgp(), world.mesh()),
        lambda found: found == (4, False),
        timeout=20 - (time.monotonic() - killed),
        what="the change converged by the standby",
    )
    took_over = time.monotonic() - killed
    events = [e["event"] for e in standby.daemon.events()]
    assert events.index("became the leader") < events.index("change applied")
    assert stored_holder(world) == standby.identity
    assert standby.daemon.metrics()["peeringd_leader"] == 1

    restarted = hosts("host-a-restarted")
    until(restarted.passes, bool, timeout=30, what="the restarted daemon's first pass")
    assert restarted.leads() is False
    assert restarted.daemon.metrics()["peeringd_leader"] == 0
    assert [e["leader"] for e in restarted.daemon.events("leader seen")] == [standby.identity]

    assert {writer for writer, _, _ in world.writes(until=killed_at)} == {active.identity}
    assert world.writes(killed_at) == [(standby.identity, "create", "bgpconfigurations")], (
        f"in {took_over:.1f}s"
    )

    assert standby.daemon.stop() == 0  # a clean stop hands the Lease over at once
    until(restarted.leads, bool, timeout=10, what="the restarted daemon leading after the release")


def test_a_leader_whose_lease_was_taken_over_does_not_write_its_next_change(
    world: World, hosts: Callable[..., Host]
) -> None:
    """The Lease changes hands while a pass observes: the pass's fence stops it before the ADC."""
    host = hosts("host-a")
    until(host.leads, bool, timeout=30, what="the daemon leading")
    converged(host)
    applied = len(host.daemon.events("change applied"))
    world.cluster.server.inject_fault("list", "bgppeers", delay=4)
    since = len(world.cluster.server.journal)
    world.state_file.write_text(world.text(ebgp=4))
    until(
        lambda: [
            e for e in world.cluster.server.journal[since:] if (e.verb, e.resource) == ("list", "bgppeers")
        ],
        bool,
        timeout=20,
        what="a pass under way",
    )
    world.cluster.server.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "peeringd", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "elsewhere",
                "leaseDurationSeconds": 3600,
                "renewTime": micro_time_now(),
            },
        }
    )

    (fenced,) = host.daemon.wait_for_event("fenced: not writing", timeout=30)
    until(
        lambda: [e for e in host.passes() if e["errors"]],
        bool,
        timeout=20,
        what="the fenced pass done",
    )
    assert fenced["target"] == "adc-1"
    assert world.max_paths_ebgp() == 8
    assert len(host.daemon.events("change applied")) == applied
    assert world.writes(since) == []
    assert host.daemon.events("lost the lease: writing nothing")
    assert host.daemon.metrics()["peeringd_leader"] == 0
    until(
        host.statuses,
        lambda found: found[-1].startswith("standby, leader is elsewhere: "),
        timeout=20,
        what="the status line naming the new leader",
    )


def test_a_paused_leader_resumed_after_the_takeover_does_not_write(
    world: World, hosts: Callable[..., Host]
) -> None:
    """SIGSTOP past the lease duration: the standby takes over; the old leader, resumed with a
    change waiting, writes nothing; the new one applies it."""
    first = hosts("host-a", "--lease-duration", "8")
    until(first.leads, bool, timeout=30, what="the first daemon leading")
    converged(first)
    second = hosts("host-b", "--lease-duration", "8")
    until(second.passes, bool, timeout=30, what="the standby's first pass")
    assert second.leads() is False

    first.daemon.signal(signal.SIGSTOP)
    until(second.leads, bool, timeout=30, what="the standby taking over")
    second.daemon.signal(signal.SIGSTOP)
    since = len(world.cluster.server.journal)
    applied = len(first.daemon.events("change applied"))
    world.state_file.write_text(world.both_sides_changed())
    first.daemon.signal(signal.SIGCONT)

    first.daemon.wait_for_event("lost the lease: writing nothing", timeout=30)
    until(
        lambda: first.daemon.events("state file changed") and first.passes()[-1]["outcome"] != "converged",
        bool,
        timeout=30,
        what="the resumed daemon's pass over the change",
    )
    assert (world.max_paths_ebgp(), world.mesh()) == (8, None)
    assert len(first.daemon.events("change applied")) == applied
    assert world.writes(since) == []

    second.daemon.signal(signal.SIGCONT)
    until(
        lambda: (world.max_paths_ebgp(), world.mesh()),
        lambda found: found == (4, False),
        timeout=30,
        what="the change converged by the new leader",
    )
    assert world.writes(since) == [(second.identity, "create", "bgpconfigurations")]
