"""The pass's fence: a check before each target's write session that may refuse it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from peeringd.adapters import statefile
from peeringd.errors import NotLeader
from peeringd.lab.kubeapi import WRITE_VERBS
from peeringd.lab.nssim import NetScalerSimulator
from peeringd.runtime import reconcile
from tests.conftest import Cluster
from tests.runtime import daemon_harness


@pytest.fixture
def adc(tmp_path: Path) -> Iterator[NetScalerSimulator]:
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as simulator:
        yield simulator


@pytest.fixture
def loaded(tmp_path: Path, adc: NetScalerSimulator) -> statefile.LoadedState:
    path = tmp_path / "peering.yaml"
    path.write_text(daemon_harness.state_text(adc, daemon_harness.write_secrets(adc, tmp_path / "secrets")))
    return statefile.load(path)


@pytest.fixture
def systems(cluster: Cluster, loaded: statefile.LoadedState) -> Iterator[reconcile.Systems]:
    with reconcile.Systems.connect(loaded, kubeconfig=cluster.kubeconfig) as connected:
        yield connected


def configuration_lines(adc: NetScalerSimulator) -> list[str]:
    """What the simulator received that changes something: configuration mode and its entry,
    feature switches, saves."""
    return [
        entry.text
        for entry in adc.journal()
        if entry.mode.startswith("config") or entry.text.startswith(("configure", "enable", "save", "write"))
    ]


def api_writes(cluster: Cluster) -> list[tuple[str, str | None]]:
    return [(e.verb, e.resource) for e in cluster.server.journal if e.verb in WRITE_VERBS]


def test_the_fence_is_asked_before_each_write_session(
    adc: NetScalerSimulator, loaded: statefile.LoadedState, systems: reconcile.Systems
) -> None:
    """Once per target, in the plan's order, and the pass converges when it lets them through."""
    asked: list[str] = []
    adc.clear_journal()
    result = reconcile.reconcile(loaded, systems, fence=asked.append)
    assert (result.outcome, asked) == (reconcile.Outcome.CONVERGED, ["adc-1", "calico"])
    assert "configure terminal" in configuration_lines(adc)


def test_a_refusal_writes_nothing_and_is_reported(
    cluster: Cluster, adc: NetScalerSimulator, loaded: statefile.LoadedState, systems: reconcile.Systems
) -> None:
    """Refused everywhere: no configuration line, no API write, the ADC's error says why, and its
    BGPPeer waits for it (Calico, with nothing else to write, opens no write session)."""

    def refuse(target: str) -> None:
        raise NotLeader("fenced: this daemon is the standby; this daemon writes nothing")

    before = adc.running()
    adc.clear_journal()
    cluster.server.clear_journal()
    result = reconcile.reconcile(loaded, systems, fence=refuse)
    assert result.outcome == reconcile.Outcome.FAILED
    assert [(target, str(error)) for target, error in result.errors] == [
        ("adc-1", "fenced: this daemon is the standby; this daemon writes nothing"),
    ]
    assert (result.applied, configuration_lines(adc), api_writes(cluster)) == ((), [], [])
    assert adc.running() == before


def test_an_adc_refused_gets_no_bgppeer(
    cluster: Cluster, loaded: statefile.LoadedState, systems: reconcile.Systems
) -> None:
    """As for an ADC that failed: nodes never point at an ADC that was not configured."""

    def refuse_the_adc(target: str) -> None:
        if target == "adc-1":
            raise NotLeader("fenced")

    result = reconcile.reconcile(loaded, systems, fence=refuse_the_adc)
    assert [target for target, _ in result.errors] == ["adc-1"]
    assert cluster.server.objects(cluster.resource("bgppeers")) == []
