"""Leader election against the lab's API server: two electors, one Lease, a clock the test moves.

Each test drives ``Elector.attempt()`` as the election thread would every retry period,
with a monotonic clock of its own, so expiry is exact and nothing sleeps.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from peeringd.adapters import kubeclient
from peeringd.adapters.lease import LeaseClient
from peeringd.core import election
from peeringd.errors import LeaseError, NotLeader
from peeringd.runtime import leader
from tests.conftest import Cluster

LEASES = "leases.coordination.k8s.io"
TIMING = election.Timing.scaled(15)


class Clock:
    """A monotonic clock that moves when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def elector(cluster: Cluster, clock: Clock) -> Iterator[Callable[..., leader.Elector]]:
    """Make electors for the Lease kube-system/peeringd; their roles are recorded in ``changes``."""
    made: list[LeaseClient] = []

    def make(identity: str, changes: list[bool] | None = None, **options: Any) -> leader.Elector:
        lease = LeaseClient.connect(cluster.kubeconfig, None, options.pop("namespace", "kube-system"), "peeringd")
        made.append(lease)
        on_change = changes.append if changes is not None else None
        return leader.Elector(lease, TIMING, identity, on_change, clock=options.pop("clock", clock), **options)

    yield make
    for lease in made:
        lease.close()


def stored(cluster: Cluster) -> dict[str, Any]:
    lease = cluster.server.get(LEASES, "peeringd", "kube-system")
    assert lease is not None
    spec: dict[str, Any] = lease["spec"]
    return spec


def lease_requests(cluster: Cluster) -> list[tuple[str, str | None]]:
    return [(e.verb, e.name) for e in cluster.server.journal if e.resource == "leases"]


class TestCampaign:
    """Who leads, and when the other takes over."""

    def test_the_first_creates_the_lease_and_leads(self, cluster: Cluster, elector: Any) -> None:
        """The Lease names it, for 15 s; the second stays standby and knows who leads."""
        a_changes: list[bool] = []
        a, b = elector("a", a_changes), elector("b")
        assert (a.attempt(), b.attempt()) == (None, None)
        assert (a.leading, b.leading, b.leader, a_changes) == (True, False, "a", [True])
        spec = stored(cluster)
        assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("a", 15, 0)
        assert b.describe() == "standby, leader is a"
        assert a.describe() == "leader (lease kube-system/peeringd)"

    def test_a_standby_is_told_when_it_sees_another_leader(
        self, cluster: Cluster, elector: Any, clock: Clock
    ) -> None:
        """So that its status line names the leader now, not after its next pass."""
        b_changes: list[bool] = []
        a, b, c = elector("a"), elector("b", b_changes), elector("c")
        a.attempt()
        b.attempt()
        b.attempt()
        c.attempt()
        assert (b.leader, b_changes) == ("a", [False])
        clock.advance(15)
        c.attempt()
        b.attempt()
        assert (b.leader, b_changes) == ("c", [False, False])

    def test_renewals_keep_the_acquire_time(self, cluster: Cluster, elector: Any, clock: Clock) -> None:
        """Every retry period the holder moves renewTime, and nothing else."""
        a = elector("a")
        a.attempt()
        first = stored(cluster)
        clock.advance(2)
        a.attempt()
        renewed = stored(cluster)
        assert (renewed["acquireTime"], renewed["leaseTransitions"]) == (first["acquireTime"], 0)
        assert renewed["renewTime"] > first["renewTime"]

    def test_the_standby_takes_over_when_the_lease_runs_out(self, cluster: Cluster, elector: Any, clock: Clock) -> None:
        """Not at 14.9 s after it last saw a renewal; at 15 s, counting a transition."""
        a, b = elector("a"), elector("b")
        a.attempt()
        b.attempt()
        clock.advance(14.9)
        b.attempt()
        assert (b.leading, stored(cluster)["holderIdentity"]) == (False, "a")
        clock.advance(0.1)
        b.attempt()
        assert (b.leading, stored(cluster)["holderIdentity"], stored(cluster)["leaseTransitions"]) == (True, "b", 1)

    def test_a_holder_that_sees_another_steps_down(self, cluster: Cluster, elector: Any, clock: Clock) -> None:
        """A paused holder, back after the takeover, learns it at its next attempt and does not take it back."""
        a_changes: list[bool] = []
        a, b = elector("a", a_changes), elector("b")
        a.attempt()
        b.attempt()
        clock.advance(15)
        b.attempt()
        with capture_logs() as logs:
            a.attempt()
        assert (a.leading, a_changes, stored(cluster)["holderIdentity"]) == (False, [True, False], "b")
        assert [e["reason"] for e in logs if e["event"] == "lost the lease: writing nothing"] == [
            "the lease is held by b"
        ]

    def test_two_creating_at_once_one_wins(self, cluster: Cluster, elector: Any) -> None:
        """The API server's AlreadyExists decides; the loser reports no problem, only its role."""
        a = elector("a")

        def b_creates_it_first(_: object) -> None:
            cluster.server.put(lease_of("b"))

        cluster.server.before_request("create", "leases", b_creates_it_first)
        assert a.attempt() is None
        assert (a.leading, stored(cluster)["holderIdentity"]) == (False, "b")

    def test_a_holder_that_cannot_renew_stops_at_the_renew_deadline(
        self, cluster: Cluster, elector: Any, clock: Clock
    ) -> None:
        """With the API server failing, the holder leads on until 10 s after its last renewal, no longer."""
        a = elector("a")
        a.attempt()
        cluster.server.inject_fault("get", "leases", status=503, times=100)
        clock.advance(9.9)
        problem = a.attempt()
        assert problem is not None
        assert (problem.transient, a.leading) == (True, True)
        clock.advance(0.1)
        a.attempt()
        assert not a.leading

    def test_a_whole_second_is_written_as_the_server_wants_it(self, cluster: Cluster, elector: Any) -> None:
        """The client would drop a zero fraction, which the API server's MicroTime refuses."""
        whole = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
        a = elector("a", wall=lambda: whole)
        assert a.attempt() is None
        assert stored(cluster)["renewTime"] == "2026-01-02T03:04:05.000001Z"


def lease_of(holder: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "peeringd", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": "2026-01-02T03:04:05.000001Z",
        },
    }


class TestFence:
    """The check before each write session."""

    def test_the_holder_may_write(self, cluster: Cluster, elector: Any) -> None:
        """One read of the Lease confirms it."""
        a = elector("a")
        a.attempt()
        cluster.server.clear_journal()
        a.fence("adc-1")
        assert lease_requests(cluster) == [("get", "peeringd")]

    def test_the_standby_may_not(self, elector: Any) -> None:
        """And says so."""
        a, b = elector("a"), elector("b")
        a.attempt()
        b.attempt()
        with pytest.raises(NotLeader) as error:
            b.fence("adc-1")
        assert str(error.value) == "fenced: this daemon is the standby; this daemon writes nothing"

    def test_a_lease_taken_over_behind_its_back_fences_the_holder(
        self, cluster: Cluster, elector: Any
    ) -> None:
        """The API server's word wins over what the holder believes; it steps down and logs why."""
        a_changes: list[bool] = []
        a = elector("a", a_changes)
        a.attempt()
        cluster.server.put(lease_of("intruder"))
        with capture_logs() as logs, pytest.raises(NotLeader) as error:
            a.fence("adc-1")
        assert str(error.value) == (
            "fenced: the lease kube-system/peeringd is held by intruder; this daemon writes nothing"
        )
        assert (a.leading, a_changes) == (False, [True, False])
        assert [(e["event"], e["target"]) for e in logs if "target" in e] == [("fenced: not writing", "adc-1")]

    def test_past_the_renew_deadline_it_does_not_even_ask(
        self, cluster: Cluster, elector: Any, clock: Clock
    ) -> None:
        """A holder paused for 10 s (SIGSTOP, a VM stall) refuses at once, without a request."""
        a = elector("a")
        a.attempt()
        clock.advance(10)
        cluster.server.clear_journal()
        with pytest.raises(NotLeader, match="past the renew deadline"):
            a.fence("calico")
        assert (lease_requests(cluster), a.leading) == ([], False)

    def test_an_unconfirmed_lease_is_not_written_under(self, cluster: Cluster, elector: Any) -> None:
        """When the API server does not answer, nothing is written, but the role stays."""
        a = elector("a")
        a.attempt()
        cluster.server.inject_fault("get", "leases", status=503)
        with pytest.raises(NotLeader, match="cannot confirm the lease kube-system/peeringd"):
            a.fence("adc-1")
        assert a.leading


class TestStartAndStop:
    """The thread's lifecycle: permanent problems stop the start, a stop releases the Lease."""

    def test_a_missing_namespace_cannot_start(self, elector: Any) -> None:
        """Retrying would not create it: say which option to change."""
        with pytest.raises(LeaseError) as error:
            elector("a", namespace="peeringd-system").start()
        assert str(error.value) == (
            'create lease peeringd-system/peeringd: namespaces "peeringd-system" not found:'
            " create the namespace, or pass --lease-namespace"
        )

    def test_forbidden_names_the_rule_to_add(self, cluster: Cluster, elector: Any) -> None:
        """A 403 names the verb and the Role that `peeringd rbac` prints."""
        cluster.server.inject_fault("get", "leases", status=403)
        with pytest.raises(LeaseError) as error:
            elector("a").start()
        assert str(error.value).startswith(
            "not allowed to get leases.coordination.k8s.io in namespace kube-system: add the rule"
            ' {apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get"]} to the Role'
            " peeringd-leader in kube-system"
        )

    def test_stop_releases_the_lease_for_the_standby(self, cluster: Cluster, elector: Any) -> None:
        """The released Lease (no holder, 1 s) is the standby's at its very next attempt."""
        a, b = elector("a"), elector("b")
        a.start()
        b.attempt()
        a.stop()
        assert (stored(cluster)["holderIdentity"], stored(cluster)["leaseDurationSeconds"]) == ("", 1)
        b.attempt()
        assert b.leading

    def test_requests_name_the_process(self, cluster: Cluster, elector: Any) -> None:
        """Every Lease request carries peeringd's User-Agent with this process's identity."""
        elector(kubeclient.identity()).attempt()
        agents = {e.user_agent for e in cluster.server.journal if e.resource == "leases"}
        assert agents == {kubeclient.user_agent()}
        assert kubeclient.identity() in kubeclient.user_agent()
