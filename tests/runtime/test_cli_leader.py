"""The command line's leader-election parts: `rbac`'s Lease rules, `status`'s leader line, `run`'s options."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from peeringd.adapters.lease import LeaseClient
from peeringd.core import election
from peeringd.lab.nssim import NetScalerSimulator
from peeringd.runtime import cli, leader
from tests.conftest import Cluster
from tests.runtime import daemon_harness
from tests.runtime.test_cli import peeringd


def documents(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The manifest's objects by (kind, name)."""
    return {(d["kind"], d["metadata"]["name"]): d for d in YAML(typ="safe").load_all(text) if d}


def lease_rules(role: dict[str, Any]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [
        (tuple(rule.get("resourceNames", ())), tuple(rule["verbs"]))
        for rule in role["rules"]
        if rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]
    ]


class TestRbac:
    """`peeringd rbac` grants the Lease in its namespace only, and only what the elector does."""

    def test_the_lease_rules_are_a_role_in_the_lease_namespace(self) -> None:
        """create (which cannot be limited to a name), then get and update of that Lease only."""
        printed = documents(peeringd("rbac").stdout)
        role, binding = printed[("Role", "peeringd-leader")], printed[("RoleBinding", "peeringd-leader")]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "kube-system"
        assert lease_rules(role) == [((), ("create",)), (("peeringd",), ("get", "update"))]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "peeringd-leader",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "peeringd", "namespace": "kube-system"}
        ]
        assert lease_rules(printed[("ClusterRole", "peeringd")]) == []

    def test_another_lease_gets_its_own_rules(self) -> None:
        """The Role moves to the Lease's namespace and names it; the account stays where it is."""
        printed = documents(
            peeringd("rbac", "--lease-namespace", "peeringd", "--lease-name", "bgp-leader").stdout
        )
        role, binding = printed[("Role", "peeringd-leader")], printed[("RoleBinding", "peeringd-leader")]
        assert (role["metadata"]["namespace"], binding["metadata"]["namespace"]) == ("peeringd", "peeringd")
        assert lease_rules(role) == [((), ("create",)), (("bgp-leader",), ("get", "update"))]
        assert binding["subjects"][0]["namespace"] == "kube-system"

    def test_the_rules_cover_every_request_of_a_campaign(self, cluster: Cluster) -> None:
        """Create, renew, take over and release: every verb the elector sends is granted."""
        lease = LeaseClient.connect(cluster.kubeconfig, None, "kube-system", "peeringd")
        elector = leader.Elector(lease, election.Timing.scaled(15), "a")
        elector.start()
        elector.attempt()
        elector.stop()
        sent = {(e.verb, e.name) for e in cluster.server.journal if e.resource == "leases"}
        role = documents(peeringd("rbac").stdout)[("Role", "peeringd-leader")]
        granted = {
            (verb, name) for names, verbs in lease_rules(role) for verb in verbs for name in names or (None,)
        }
        assert sent == {("get", "peeringd"), ("create", None), ("update", "peeringd")}
        assert sent <= granted


class TestStatus:
    """`peeringd status` names the leader when daemons run with --leader-elect."""

    @pytest.fixture
    def state_file(self, tmp_path: Path) -> Iterator[Path]:
        with NetScalerSimulator(host_key_path=tmp_path / "host-key") as adc:
            path = tmp_path / "peering.yaml"
            path.write_text(
                daemon_harness.state_text(adc, daemon_harness.write_secrets(adc, tmp_path / "secrets"))
            )
            yield path

    def test_the_holder_is_shown(self, cluster: Cluster, state_file: Path) -> None:
        """With the time since its last renewal."""
        renewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=3)
        cluster.server.put(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "peeringd", "namespace": "kube-system"},
                "spec": {
                    "holderIdentity": "mgmt-1_4123_9f2c3a",
                    "leaseDurationSeconds": 15,
                    "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                },
            }
        )
        result = peeringd("status", "-f", state_file, "--kubeconfig", cluster.kubeconfig)
        elapsed = (datetime.datetime.now(datetime.UTC) - renewed).total_seconds()
        shown = re.fullmatch(
            r"leader: mgmt-1_4123_9f2c3a \(lease kube-system/peeringd, renewed (\d+)s ago\)",
            result.stdout.splitlines()[1],
        )
        assert shown is not None, result.stdout + result.stderr
        assert 3 <= int(shown[1]) <= elapsed + 1

    def test_without_a_lease_there_is_no_leader_line(self, cluster: Cluster, state_file: Path) -> None:
        """A daemon without --leader-elect has no Lease: nothing to say."""
        result = peeringd("status", "-f", state_file, "--kubeconfig", cluster.kubeconfig)
        assert not any(line.startswith("leader:") for line in result.stdout.splitlines())


def test_the_command_line_defaults_are_the_runtimes() -> None:
    """cli.py spells the defaults out (to keep --help light); they must be runtime.leader's."""
    run_defaults = {p.name: p.default for p in cli.run.params}
    assert (run_defaults["lease_namespace"], run_defaults["lease_name"], run_defaults["lease_duration"]) == (
        leader.DEFAULT_NAMESPACE,
        leader.DEFAULT_LEASE_NAME,
        leader.Settings().lease_duration,
    )
