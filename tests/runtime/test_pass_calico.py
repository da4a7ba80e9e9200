"""Reconcile passes on the Calico side, against a Kubernetes API server with real semantics."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peeringd.adapters import calico, statefile
from peeringd.core import ownership
from peeringd.lab.kubeapi import WRITE_VERBS, JournalEntry
from peeringd.runtime import reconcile
from tests.conftest import Cluster
from tests.runtime.test_cli import peeringd

STATE = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster:
  name: prod-1
  podCIDR: {pod_cidr}
  asNumber: 64512
adcs:
{adcs}
"""
ADC = """\
  - name: {name}
    asNumber: 500
    peerIP: {peer_ip}
    ssh: {{host: {peer_ip}, username: nsroot, passwordFile: /nonexistent}}
"""


def write_state(path: Path, *adcs: tuple[str, str], pod_cidr: str = "192.168.0.0/16") -> Path:
    body = "".join(ADC.format(name=name, peer_ip=peer_ip) for name, peer_ip in adcs) or "  []\n"
    path.write_text(STATE.format(pod_cidr=pod_cidr, adcs=body).replace("adcs:\n  []", "adcs: []"))
    return path


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return write_state(tmp_path / "peering.yaml", ("adc-1", "10.0.0.100"), ("adc-2", "10.0.0.101"))


@pytest.fixture
def systems(cluster: Cluster) -> Iterator[reconcile.Systems]:
    side = reconcile.Systems(calico=calico.Calico.connect(cluster.kubeconfig))
    yield side
    side.close()


def run_pass(state_file: Path, systems: reconcile.Systems) -> reconcile.Report:
    return reconcile.reconcile(statefile.load(state_file), systems)


def writes(cluster: Cluster) -> list[tuple[str, str | None, str | None]]:
    return [(e.verb, e.resource, e.name) for e in cluster.server.journal if e.verb in WRITE_VERBS]


def peers(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in cluster.server.objects(cluster.resource("bgppeers"))}


def test_from_empty_one_peer_per_adc_then_verified(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path
) -> None:
    result = run_pass(state_file, systems)

    assert result.outcome == reconcile.Outcome.CONVERGED
    assert writes(cluster) == [("create", "bgppeers", None), ("create", "bgppeers", None)]
    assert {name: p["spec"] for name, p in peers(cluster).items()} == {
        "adc-1": {"peerIP": "10.0.0.100", "asNumber": 500},
        "adc-2": {"peerIP": "10.0.0.101", "asNumber": 500},
    }


def test_a_no_op_pass_reads_four_times_and_writes_nothing(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path
) -> None:
    run_pass(state_file, systems)
    cluster.server.clear_journal()
    result = run_pass(state_file, systems)

    assert (result.outcome, result.applied) == (reconcile.Outcome.CONVERGED, ())
    assert [(e.verb, e.resource) for e in cluster.server.journal] == [
        ("list", "nodes"),
        ("list", "bgppeers"),
        ("get", "bgpconfigurations"),
        ("list", "ippools"),
    ]


def test_a_node_joining_changes_nothing_on_calico(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path
) -> None:
    run_pass(state_file, systems)
    cluster.add_node("node-4", "10.0.0.14")
    cluster.server.clear_journal()

    assert run_pass(state_file, systems).planned.changes == ()
    assert writes(cluster) == []


def test_removing_an_adc_deletes_only_its_peer(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path, tmp_path: Path
) -> None:
    run_pass(state_file, systems)
    adc_1_version = peers(cluster)["adc-1"]["metadata"]["resourceVersion"]
    write_state(state_file, ("adc-1", "10.0.0.100"))
    cluster.server.clear_journal()
    result = run_pass(state_file, systems)

    assert result.outcome == reconcile.Outcome.CONVERGED
    assert writes(cluster) == [("delete", "bgppeers", "adc-2")]
    assert peers(cluster)["adc-1"]["metadata"]["resourceVersion"] == adc_1_version


def test_peers_that_are_not_ours_are_untouched(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path
) -> None:
    """A hand-made peer with one of our names and a copy of our label with no cluster mark stay as they are."""
    for name, peer_ip, labels in (
        ("adc-1", "10.0.0.100", {}),
        ("copied", "10.0.0.77", {ownership.MANAGED_BY_LABEL: "peeringd"}),
    ):
        cluster.server.put(
            {
                "apiVersion": cluster.group,
                "kind": "BGPPeer",
                "metadata": {"name": name, "labels": labels},
                "spec": {"peerIP": peer_ip, "asNumber": 65000},
            }
        )
    before = peers(cluster)
    result = run_pass(state_file, systems)
    after = peers(cluster)

    assert {name: after[name] for name in before} == before
    assert set(after) == {"adc-1", "adc-2", "copied"}
    assert "BGPPeer adc-1 exists but is not peeringd's for cluster prod-1; left as it is" in [
        f.message for f in result.planned.findings
    ]


def test_a_concurrent_edit_gets_a_409_and_the_pass_re_plans(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path
) -> None:
    run_pass(state_file, systems)
    write_state(state_file, ("adc-1", "10.0.0.200"), ("adc-2", "10.0.0.101"))

    def someone_else_writes(_: JournalEntry) -> None:
        edited = peers(cluster)["adc-1"]
        edited["metadata"]["labels"]["team"] = "network"
        cluster.server.put(edited)

    cluster.server.before_request("patch", "bgppeers", someone_else_writes, name="adc-1")
    cluster.server.clear_journal()
    result = run_pass(state_file, systems)

    assert result.outcome == reconcile.Outcome.CONVERGED
    assert [(c.kind, c.action) for c in result.applied] == [("bgppeer", "update")]
    assert writes(cluster) == [("patch", "bgppeers", "adc-1"), ("patch", "bgppeers", "adc-1")]
    adc_1 = peers(cluster)["adc-1"]
    assert (adc_1["spec"]["peerIP"], adc_1["metadata"]["labels"]["team"]) == ("10.0.0.200", "network")


def test_a_pod_cidr_of_another_cluster_writes_nothing(
    cluster: Cluster, systems: reconcile.Systems, tmp_path: Path
) -> None:
    state_file = write_state(tmp_path / "other.yaml", ("adc-1", "10.0.0.100"), pod_cidr="10.244.0.0/16")
    result = run_pass(state_file, systems)

    assert result.outcome == reconcile.Outcome.FAILED
    assert writes(cluster) == []


def test_an_api_server_that_is_down_fails_the_pass_transiently(
    cluster: Cluster, systems: reconcile.Systems, state_file: Path
) -> None:
    cluster.server.inject_fault("list", "nodes", status=503)
    result = run_pass(state_file, systems)

    assert (result.outcome, result.transient) == (reconcile.Outcome.FAILED, True)
    assert [target for target, _ in result.errors] == ["calico"]


def test_cli_plan_then_apply_then_plan(cluster: Cluster, state_file: Path) -> None:
    """The Calico part from the command line: 2 (changes), 0 (applied), 0 (nothing left)."""
    common = ("-f", state_file, "--kubeconfig", cluster.kubeconfig, "--only", "calico")
    planned = peeringd("plan", *common)
    applied = peeringd("apply", "--yes", *common)
    again = peeringd("plan", *common)

    assert (planned.returncode, applied.returncode, again.returncode) == (2, 0, 0), applied.stderr
    assert "  + BGPPeer adc-1: peerIP 10.0.0.100, asNumber 500 (global peer)" in planned.stdout
    assert "calico (crd.projectcalico.org/v1)" in planned.stdout
    assert "Applied 2 changes; converged." in applied.stdout
    assert again.stdout == "No changes: live state matches the file.\n"


def test_cli_apply_reports_a_missing_crd_in_one_line(cluster_factory: Any, state_file: Path) -> None:
    started = cluster_factory("none")
    result = peeringd(
        "apply", "--yes", "-f", state_file, "--kubeconfig", started.kubeconfig, "--only", "calico"
    )

    assert result.returncode == 1
    assert "error: calico: " in result.stderr
    assert "is Calico installed?" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_apply_logs_each_change_as_one_json_event(cluster: Cluster, state_file: Path) -> None:
    subprocess.run(["git", "init", "-q", str(state_file.parent)], check=True)
    result = peeringd(
        "apply", "--yes", "-f", state_file, "--kubeconfig", cluster.kubeconfig, "--only", "calico"
    )
    events = [line for line in result.stderr.splitlines() if '"change applied"' in line]

    assert len(events) == 2
    assert '"object": "BGPPeer adc-1"' in events[0]
    assert (
        '"after": {"peer_ip": "10.0.0.100", "as_number": 500, "node": null, "node_selector": null, '
        '"password": null}' in events[0]
    )
