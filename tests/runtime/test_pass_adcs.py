"""Passes over several ADCs at once: each ADC configured beside the others, Calico after them;
one failing ADC holds back only its own BGPPeer, and a Calico that cannot be read removes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from peeringd.adapters import kubeclient, statefile
from peeringd.adapters.calico import Calico
from peeringd.adapters.netscaler import NetScaler
from peeringd.errors import CommandRejected, DeviceUnreachable
from peeringd.lab.kubeapi import JournalEntry
from peeringd.lab.nssim import DeviceConfig, NetScalerSimulator, write_known_hosts
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


def blind_by_down(cluster: Cluster) -> None:
    cluster.server.go_down()


def blind_by_403(cluster: Cluster) -> None:
    cluster.server.inject_fault("list", "nodes", status=403, times=100)


def blind_by_timeouts(cluster: Cluster) -> None:
    # Longer than the pass's read timeout, for the first try and each of urllib3's retries.
    cluster.server.inject_fault("list", "nodes", delay=3, times=100)


@pytest.mark.parametrize("blind", [blind_by_down, blind_by_403, blind_by_timeouts])
def test_while_calico_is_unobserved_no_neighbour_is_removed_and_nothing_saved(
    cluster: Cluster,
    adcs: dict[str, NetScalerSimulator],
    loaded: statefile.LoadedState,
    blind: Callable[[Cluster], None],
) -> None:
    """node-3 left and node-4 joined; adc-1's pass was cut before it removed node-3, so it is
    half-done and unsaved. A pass that cannot read the Nodes then does not know who left:
    every neighbour stays, and no ADC is saved (adc-1 would keep its half-done state)."""
    calico = Calico(kubeclient.connect(cluster.kubeconfig), timeout=(1.0, 0.5))
    devices = {adc.name: NetScaler(adc) for adc in loaded.state.adcs}
    with reconcile.Systems(calico=calico, devices=devices) as systems:
        assert reconcile.reconcile(loaded, systems).outcome == reconcile.Outcome.CONVERGED
        cluster.server.delete("nodes", "node-3")
        cluster.add_node("node-4", "10.0.0.14")
        adcs["adc-1"].drop_on(r"no neighbor 10\.0\.0\.13", how="transport")
        assert reconcile.reconcile(loaded, systems).outcome == reconcile.Outcome.FAILED
        saves: list[DeviceConfig] = []
        for simulator in adcs.values():
            simulator.on_save(saves.append)
            simulator.clear_journal()
        blind(cluster)
        report = reconcile.reconcile(loaded, systems)

        assert report.outcome == reconcile.Outcome.FAILED
        assert [target for target, _ in report.errors] == ["calico"]
        assert neighbours(adcs["adc-1"]) == ["10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"]
        for simulator in adcs.values():
            assert not any(line.startswith(("configure", "save")) for line in sent(simulator))
        assert saves == []
        if blind is blind_by_down:
            cluster.server.come_up()
        else:
            cluster.server.clear_faults()
        again = reconcile.reconcile(loaded, systems)

    assert again.outcome == reconcile.Outcome.CONVERGED
    assert [neighbours(simulator) for simulator in adcs.values()] == [
        ["10.0.0.11", "10.0.0.12", "10.0.0.14"]
    ] * 2
    assert [sorted(save.zebos.bgp.neighbors) for save in saves if save.zebos.bgp] == [
        ["10.0.0.11", "10.0.0.12", "10.0.0.14"]
    ]


def test_an_adc_dropped_mid_configuration_holds_back_only_its_own_bgppeer(
    cluster: Cluster,
    adcs: dict[str, NetScalerSimulator],
    loaded: statefile.LoadedState,
    systems: reconcile.Systems,
) -> None:
    """adc-2's connection drops at its second neighbour: adc-1 and its BGPPeer go ahead; adc-2 is not saved half-done, and the next pass finishes it
    on a new connection (the closed one is noticed, not waited on)."""
    saves: list[DeviceConfig] = []
    adcs["adc-2"].on_save(saves.append)
    adcs["adc-2"].drop_on(r"neighbor 10\.0\.0\.12 remote-as 64512", how="transport")
    report = reconcile.reconcile(loaded, systems)
    peers = [peer["metadata"]["name"] for peer in cluster.server.objects(cluster.resource("bgppeers"))]

    assert report.outcome == reconcile.Outcome.FAILED
    assert isinstance(dict(report.errors)["adc-2"], DeviceUnreachable)
    assert peers == ["adc-1"]
    assert neighbours(adcs["adc-1"]) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert (saves, adcs["adc-2"].saved().zebos.bgp) == ([], None)

    again = reconcile.reconcile(loaded, systems)
    peers = [peer["metadata"]["name"] for peer in cluster.server.objects(cluster.resource("bgppeers"))]

    assert again.outcome == reconcile.Outcome.CONVERGED
    assert peers == ["adc-1", "adc-2"]
    assert [sorted(save.zebos.bgp.neighbors) for save in saves if save.zebos.bgp] == [
        ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    ]


def test_a_neighbour_whose_description_never_arrived_is_left_as_hand_made(
    adcs: dict[str, NetScalerSimulator], loaded: statefile.LoadedState, systems: reconcile.Systems
) -> None:
    """Cut between `remote-as` and `description`, peeringd's own neighbour cannot be told from
    a hand-made one: it is reported and never changed or removed."""
    adcs["adc-1"].drop_on(r"neighbor 10\.0\.0\.11 description .*", how="transport")
    reconcile.reconcile(loaded, systems)
    adcs["adc-1"].clear_journal()
    again = reconcile.reconcile(loaded, systems)

    assert again.outcome == reconcile.Outcome.CONVERGED
    assert not any("10.0.0.11" in line for line in sent(adcs["adc-1"]))
    assert neighbours(adcs["adc-1"]) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert any("neighbor 10.0.0.11 was not made by peeringd" in f.message for f in again.planned.findings)
