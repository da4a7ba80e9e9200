"""Whole passes from the command line: Calico through the API server, the ADC over SSH."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peeringd.lab.lab import Lab
from peeringd.lab.nssim import NetScalerSimulator
from tests.conftest import Cluster
from tests.runtime import daemon_harness
from tests.runtime.test_cli import peeringd
from tests.support import REPO


def neighbours(adc: NetScalerSimulator) -> list[str]:
    router = adc.running().zebos.bgp
    return sorted(router.neighbors) if router else []


@pytest.fixture
def adc(tmp_path: Path) -> Iterator[NetScalerSimulator]:
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as simulator:
        yield simulator


@pytest.fixture
def state_file(tmp_path: Path, adc: NetScalerSimulator) -> Path:
    path = tmp_path / "peering.yaml"
    path.write_text(daemon_harness.state_text(adc, daemon_harness.write_secrets(adc, tmp_path / "secrets")))
    return path


def test_apply_converges_both_sides_and_a_second_plan_is_empty(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    applied = peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig)
    again = peeringd("plan", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert (applied.returncode, again.returncode) == (0, 0), applied.stdout + applied.stderr
    assert "Applied 9 changes; converged." in applied.stdout
    assert neighbours(adc) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert adc.saved().features["BGP"]
    assert cluster.server.get(cluster.resource("bgppeers"), "adc-1") is not None


def test_only_adc_reads_calico_and_changes_only_the_adc(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    result = peeringd("apply", "--yes", "--only", "adc", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert result.returncode == 0, result.stdout + result.stderr
    assert neighbours(adc) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert cluster.server.objects(cluster.resource("bgppeers")) == []


def test_an_unreachable_adc_gets_no_bgppeer_pointing_at_it(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    port = adc.port
    adc.stop()
    result = peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert result.returncode == 1
    assert f"error: adc-1: cannot connect to 127.0.0.1:{port}" in result.stderr
    assert cluster.server.objects(cluster.resource("bgppeers")) == []


def test_a_missing_password_file_names_its_line(cluster: Cluster, state_file: Path) -> None:
    secret = state_file.parent / "secrets" / "adc-1.password"
    secret.unlink()
    result = peeringd("plan", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert result.returncode == 1
    assert result.stderr == f"{state_file}:12:73: adcs[0].ssh.passwordFile: {secret} does not exist\n"


def test_observe_mode_reports_drift_and_changes_nothing(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    state_file.write_text(state_file.read_text() + "  mode: observe\n")
    result = peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert result.returncode == 2
    assert "+ router bgp 500" in result.stdout
    assert not any("router bgp" in entry.text for entry in adc.journal())
    assert cluster.server.objects(cluster.resource("bgppeers")) == []


def report_established(cluster: Cluster) -> None:
    """What calico-node writes into each CalicoNodeStatus: its session with the ADC Established."""
    for status in cluster.server.objects(cluster.resource("caliconodestatuses")):
        peer = {"peerIP": "10.0.0.100", "type": "GlobalPeer", "state": "Established", "since": "09:00:00"}
        status["status"] = {
            "lastUpdated": "2026-03-01T09:00:00Z",
            "bgp": {
                "numberEstablishedV4": 1,
                "numberEstablishedV6": 0,
                "numberNotEstablishedV4": 0,
                "numberNotEstablishedV6": 0,
                "peersV4": [peer],
            },
        }
        cluster.server.put(status)


def test_status_waits_a_bounded_time_and_calls_a_silent_calico_node_unknown(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    """No calico-node reports here: after the update period plus 2 s, the sessions are unknown,
    never one-sided; the objects it created stay for the next call, marked as peeringd's."""
    assert peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig).returncode == 0
    started = time.monotonic()
    first = peeringd("status", "-f", state_file, "--kubeconfig", cluster.kubeconfig, "--update-period", "1")
    waited = time.monotonic() - started
    statuses = cluster.server.objects(cluster.resource("caliconodestatuses"))

    assert first.returncode == 4, first.stderr
    assert first.stdout.startswith(f"calico: crd.projectcalico.org/v1 at {cluster.server.url}\n")
    assert "  node-1  10.0.0.11  Established" in first.stdout
    assert first.stdout.count("unknown (calico-node has not reported yet)\n") == 3
    assert "one-sided" not in first.stdout
    assert waited >= 3  # the update period plus 2 s, for calico-node's first report
    assert [s["spec"] for s in statuses] == [
        {"node": f"node-{n}", "classes": ["BGP"], "updatePeriodSeconds": 1} for n in (1, 2, 3)
    ]
    assert all(s["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "peeringd"} for s in statuses)
    assert all("peeringd.io/expires-at" in s["metadata"]["annotations"] for s in statuses)


def test_a_later_status_answers_at_once_from_both_ends(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    assert peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig).returncode == 0
    peeringd("status", "-f", state_file, "--kubeconfig", cluster.kubeconfig, "--update-period", "1")
    report_established(cluster)
    cluster.server.clear_journal()
    second = peeringd("status", "-f", state_file, "--kubeconfig", cluster.kubeconfig, "-o", "json")

    assert second.returncode == 0, second.stderr
    assert [(row["node"], row["verdict"]) for row in json.loads(second.stdout)] == [
        ("node-1", "established"),
        ("node-2", "established"),
        ("node-3", "established"),
    ]
    writes = [e for e in cluster.server.journal if e.verb in {"create", "patch", "update", "delete"}]
    assert writes == []  # within the retention, nothing is created or renewed


def test_status_keep_0_removes_what_it_created(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    assert peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig).returncode == 0
    result = peeringd(
        "status", "-f", state_file, "--kubeconfig", cluster.kubeconfig, "--update-period", "1", "--keep", "0"
    )

    assert result.returncode == 4, result.stderr
    assert cluster.server.objects(cluster.resource("caliconodestatuses")) == []


def test_apply_removes_the_status_objects_whose_retention_ended(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    """Its own objects that expired go; another tool's stay."""
    peeringd("status", "-f", state_file, "--kubeconfig", cluster.kubeconfig, "--update-period", "1")
    for status in cluster.server.objects(cluster.resource("caliconodestatuses"))[:2]:
        status["metadata"]["annotations"]["peeringd.io/expires-at"] = "2020-01-01T00:00:00Z"
        cluster.server.put(status)
    theirs = {
        "apiVersion": cluster.group,
        "kind": "CalicoNodeStatus",
        "metadata": {"name": "debug-node-1"},
        "spec": {"node": "node-1", "classes": ["BGP"], "updatePeriodSeconds": 30},
    }
    cluster.server.put(theirs)
    result = peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert result.returncode == 0, result.stderr
    names = [s["metadata"]["name"] for s in cluster.server.objects(cluster.resource("caliconodestatuses"))]
    assert names == ["debug-node-1", "peeringd.node-3"]


def test_apply_then_status_exits_0_the_first_time_on_the_lab(tmp_path: Path) -> None:
    """The lab's calico-node reports what the daemon configured: both ends Established at once."""
    running = Lab(REPO / "state" / "peering.yaml", tmp_path / "lab")
    running.start()
    try:
        applied = peeringd("apply", "--yes", "-f", running.state_file, "--kubeconfig", running.kubeconfig)
        first = peeringd("status", "-f", running.state_file, "--kubeconfig", running.kubeconfig)
    finally:
        running.stop()

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count(" established\n") == 3


def test_an_adc_whose_reply_cannot_be_read_gets_no_configuration_line(
    cluster: Cluster, adc: NetScalerSimulator, state_file: Path
) -> None:
    """A running config cut off inside router bgp makes the ADC unobservable for the pass: a
    joining node gets no neighbour line and no BGPPeer is touched; the journal shows it."""
    assert peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig).returncode == 0
    peer = cluster.server.get(cluster.resource("bgppeers"), "adc-1")
    cluster.add_node("node-4", "10.0.0.14")
    adc.reject_line("show running-config", "!\nrouter bgp 500\n neighbor 10.0.0.11 remote-as 64512")
    adc.clear_journal()
    result = peeringd("apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "adc-1: cannot read its reply to show running-config: the reply ends before `end`: it was cut off"
        in result.stderr
    )
    received = [entry.text for entry in adc.journal() if entry.text.strip()]
    assert "show running-config" in received
    assert "configure terminal" not in received
    assert neighbours(adc) == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert cluster.server.get(cluster.resource("bgppeers"), "adc-1") == peer
