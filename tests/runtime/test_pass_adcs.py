"""Passes over several ADCs at once: each ADC configured beside the others, Calico after them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from peeringd.adapters import statefile
from peeringd.errors import CommandRejected
from peeringd.lab.kubeapi import JournalEntry
from peeringd.lab.nssim import NetScalerSimulator, write_known_hosts
from peeringd.runtime import reconcile
from tests.bgplab.poll import until
from tests.conftest import Cluster

STATE = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster: {{name: prod-1, podCIDR: 192.168.0.0/16, asNumber: 64512}}
adcs:
{adcs}
"""
ADC = """\
  - name: {name}
    asNumber: 500
    peerIP: 10.0.0.{octet}
    ssh: {{host: 127.0.0.1, port: {port}, username: nsroot, passwordFile: {folder}/password, knownHostsFile: {folder}/known_hosts}}
"""


@pytest.fixture
def adcs(tmp_path: Path) -> Iterator[dict[str, NetScalerSimulator]]:
    with ExitStack() as stack:
        simulators = {
            name: stack.enter_context(NetScalerSimulator(host_key_path=tmp_path / f"{name}.key"))
            for name in ("adc-1", "adc-2")
        }
        (tmp_path / "password").write_text("nsroot\n")
        write_known_hosts(tmp_path / "known_hosts", simulators.values())
        yield simulators


@pytest.fixture
def loaded(tmp_path: Path, adcs: dict[str, NetScalerSimulator]) -> statefile.LoadedState:
    body = "".join(
        ADC.format(name=name, octet=100 + index, port=simulator.port, folder=tmp_path)
        for index, (name, simulator) in enumerate(adcs.items())
    )
    path = tmp_path / "peering.yaml"
    path.write_text(STATE.format(adcs=body))
    return statefile.load(path)


@pytest.fixture
def systems(cluster: Cluster, loaded: statefile.LoadedState) -> Iterator[reconcile.Systems]:
    with reconcile.Systems.connect(loaded, kubeconfig=cluster.kubeconfig) as connected:
        yield connected


def neighbours(simulator: NetScalerSimulator) -> list[str]:
    router = simulator.running().zebos.bgp
    return sorted(router.neighbors) if router else []


def sent(simulator: NetScalerSimulator) -> list[str]:
    return [entry.text for entry in simulator.journal()]


def test_each_bgppeer_is_created_after_its_adc_has_the_neighbours(
    cluster: Cluster,
    adcs: dict[str, NetScalerSimulator],
    loaded: statefile.LoadedState,
    systems: reconcile.Systems,
) -> None:
    """Checked by the API server the moment each create arrives; the ADC that failed gets none."""
    adcs["adc-2"].reject_line(r"neighbor 10\.0\.0\.12 remote-as 64512", "% Neighbor limit reached")
    seen: dict[str, list[str]] = {}

    def at_create(entry: JournalEntry) -> None:
        if entry.name is None:  # a create names its object in the body; look at both ADCs then
            for name, simulator in adcs.items():
                seen.setdefault(name, neighbours(simulator))

    cluster.server.before_request("create", "bgppeers", at_create, times=2)
    report = reconcile.reconcile(loaded, systems)
    peers = [peer["metadata"]["name"] for peer in cluster.server.objects(cluster.resource("bgppeers"))]

    assert report.outcome == reconcile.Outcome.FAILED
    assert isinstance(dict(report.errors)["adc-2"], CommandRejected)
    assert peers == ["adc-1"]
    assert seen["adc-1"] == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert neighbours(adcs["adc-2"]) == ["10.0.0.11", "10.0.0.13"]  # what its batch completed


def test_adcs_are_configured_at_the_same_time(
    adcs: dict[str, NetScalerSimulator], loaded: statefile.LoadedState, systems: reconcile.Systems
) -> None:
    """adc-1 answers its configuration session late: adc-2 is done before adc-1 goes on."""
    adcs["adc-1"].delay_replies(8, r"configure terminal")
    passing = threading.Thread(target=reconcile.reconcile, args=(loaded, systems))
    passing.start()
    try:
        until(
            lambda: sent(adcs["adc-2"]), lambda lines: "save ns config" in lines, timeout=6, what="adc-2 done"
        )
        assert "configure terminal" in sent(adcs["adc-1"])
        assert "end" not in sent(adcs["adc-1"])
    finally:
        passing.join(60)
    assert neighbours(adcs["adc-1"]) == neighbours(adcs["adc-2"]) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
