"""The Calico adapter against a Kubernetes API server over HTTP, with the real client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from peeringd.adapters import calico
from peeringd.core import live, ownership
from peeringd.core.plan import Action, ConfigurationChange, ConfigurationSpec, PeerChange, PeerSpec
from peeringd.errors import (
    CalicoConflict,
    CalicoForbidden,
    CalicoInvalid,
    CalicoNotInstalled,
    CalicoUnavailable,
    KubeconfigError,
)
from tests.conftest import Cluster


@pytest.fixture
def connected(cluster: Cluster) -> Iterator[calico.Calico]:
    with calico.Calico.connect(cluster.kubeconfig) as side:
        yield side


def create(name: str, peer_ip: str = "10.0.0.100", as_number: int = 500) -> PeerChange:
    return PeerChange(
        action=Action.CREATE, name=name, before=None, after=PeerSpec(peer_ip=peer_ip, as_number=as_number)
    )


def test_observe_is_four_requests_whatever_the_cluster_size(
    cluster: Cluster, connected: calico.Calico
) -> None:
    connected.observe()  # discovery happens once per connection
    cluster.server.clear_journal()
    for index in range(50):
        cluster.add_node(f"extra-{index}", f"10.0.1.{index + 1}")
    cluster.server.clear_journal()
    snapshot = connected.observe()

    assert len(snapshot.nodes) == 53
    assert [(e.verb, e.resource) for e in cluster.server.journal] == [
        ("list", "nodes"),
        ("list", "bgppeers"),
        ("get", "bgpconfigurations"),
        ("list", "ippools"),
    ]


def test_observe_with_nodes_known_lists_no_node(cluster: Cluster, connected: calico.Calico) -> None:
    """The daemon's watched cache gives the Nodes: three requests."""
    known = (live.Node(name="node-9", ipv4_address_annotation="10.0.0.99/24"),)
    connected.observe()
    cluster.server.clear_journal()

    assert connected.observe(nodes=known).nodes == known
    assert [(e.verb, e.resource) for e in cluster.server.journal] == [
        ("list", "bgppeers"),
        ("get", "bgpconfigurations"),
        ("list", "ippools"),
    ]


def test_nodes_listed_in_pages_are_one_list(cluster: Cluster, connected: calico.Calico) -> None:
    """The daemon's cache lists in pages, never holding all of a large list's JSON at once."""
    cluster.server.clear_journal()
    nodes, version = connected.list_nodes(page=2)

    assert [node.name for node in nodes] == ["node-1", "node-2", "node-3"]
    assert version == connected.list_nodes()[1]
    assert [e.query.get("limit") for e in cluster.server.journal if e.resource == "nodes"][:2] == ["2", "2"]


def test_a_node_watch_yields_what_changed_after_the_list(cluster: Cluster, connected: calico.Calico) -> None:
    _, version = connected.list_nodes()
    cluster.add_node("node-4", "10.0.0.14")
    cluster.server.delete("nodes", "node-1")
    events = connected.watch_nodes("", version, timeout_seconds=1)

    assert [(e.kind, e.node.name if e.node else None) for e in events] == [
        ("ADDED", "node-4"),
        ("DELETED", "node-1"),
    ]


def test_a_node_watch_from_a_forgotten_version_says_list_again(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """410 Gone: the server no longer keeps the history since that resourceVersion."""
    cluster = cluster_factory(nodes=0, history_limit=3)
    with calico.Calico.connect(cluster.kubeconfig) as side:
        _, version = side.list_nodes()
        for index in range(5):
            cluster.add_node(f"node-{index}", f"10.0.0.{index + 10}")
        events = side.watch_nodes("", version, timeout_seconds=1)
        with pytest.raises(CalicoConflict, match="the node watch expired"):
            list(events)


def test_node_statuses_are_created_renewed_read_and_deleted(
    cluster: Cluster, connected: calico.Calico
) -> None:
    expires = datetime(2026, 3, 1, 12, 15, tzinfo=UTC)
    name = connected.create_node_status("node-1", cluster="prod-1", period=60, expires=expires)
    connected.create_node_status("node-1", cluster="prod-1", period=60, expires=expires)  # a race: fine
    connected.extend_node_status(name, expires + timedelta(minutes=5))
    stored = cluster.server.get(cluster.resource("caliconodestatuses"), name)
    assert stored is not None
    stored["status"] = {"lastUpdated": "2026-03-01T12:00:01Z"}  # calico-node's first report
    cluster.server.put(stored)
    (mine,) = connected.node_statuses(cluster="prod-1", only_ours=True)
    connected.delete_node_status(name)
    connected.delete_node_status(name)  # already gone: fine

    assert stored["spec"] == {"node": "node-1", "classes": ["BGP"], "updatePeriodSeconds": 60}
    assert stored["metadata"]["labels"] == {ownership.MANAGED_BY_LABEL: "peeringd"}
    assert (mine.name, mine.node, mine.owned, mine.reported) == ("peeringd.node-1", "node-1", True, True)
    assert mine.expires_at == expires + timedelta(minutes=5)
    assert connected.node_statuses(cluster="prod-1") == ()


def test_observe_reads_nodes_pools_and_the_missing_default_configuration(connected: calico.Calico) -> None:
    snapshot = connected.observe()

    assert snapshot.api_group == "crd.projectcalico.org/v1"
    assert snapshot.configuration is None
    assert snapshot.nodes[0] == live.Node(
        name="node-1", ipv4_address_annotation="10.0.0.11/24", internal_ips=("10.0.0.11",)
    )
    assert [(p.name, p.cidr) for p in snapshot.pools] == [("default-ipv4-ippool", "192.168.0.0/16")]


def test_the_label_selector_is_applied_by_the_server(cluster: Cluster, connected: calico.Calico) -> None:
    cluster.add_node("edge-1", "10.0.0.50", role="edge")

    assert [n.name for n in connected.observe("role=edge").nodes] == ["edge-1"]
    assert cluster.server.journal[-4].query.get("labelSelector") == "role=edge"


def test_created_peers_carry_the_ownership_marks(cluster: Cluster, connected: calico.Calico) -> None:
    list(connected.apply((create("adc-1"),), cluster="prod-1", state_hash="abc123"))
    stored = cluster.server.get(cluster.resource("bgppeers"), "adc-1")
    assert stored is not None

    assert stored["spec"] == {"peerIP": "10.0.0.100", "asNumber": 500}
    assert stored["metadata"]["labels"] == {ownership.MANAGED_BY_LABEL: "peeringd"}
    assert stored["metadata"]["annotations"] == {
        ownership.CLUSTER_ANNOTATION: "prod-1",
        ownership.STATE_HASH_ANNOTATION: "abc123",
    }
    assert ownership.owns_peer(connected.observe().peers[0], "prod-1")


def test_update_patches_only_owned_fields_with_the_version_read(
    cluster: Cluster, connected: calico.Calico
) -> None:
    list(connected.apply((create("adc-1"),), cluster="prod-1", state_hash="h1"))
    stored = cluster.server.get(cluster.resource("bgppeers"), "adc-1")
    assert stored is not None
    stored["spec"]["keepaliveTime"] = "30s"  # a field someone else owns
    cluster.server.put(stored)
    (peer,) = connected.observe().peers
    update = PeerChange(
        action=Action.UPDATE,
        name="adc-1",
        before=PeerSpec(peer_ip="10.0.0.100", as_number=500),
        after=PeerSpec(peer_ip="10.0.0.101", as_number=500),
        resource_version=peer.resource_version,
    )
    list(connected.apply((update,), cluster="prod-1", state_hash="h2"))
    after = cluster.server.get(cluster.resource("bgppeers"), "adc-1")
    assert after is not None

    assert after["spec"] == {"peerIP": "10.0.0.101", "asNumber": 500, "keepaliveTime": "30s"}
    assert after["metadata"]["annotations"][ownership.STATE_HASH_ANNOTATION] == "h2"


def test_a_stale_resource_version_is_a_conflict(cluster: Cluster, connected: calico.Calico) -> None:
    list(connected.apply((create("adc-1"),), cluster="prod-1", state_hash="h"))
    (peer,) = connected.observe().peers
    stale = PeerChange(
        action=Action.DELETE,
        name="adc-1",
        before=PeerSpec(peer_ip="10.0.0.100", as_number=500),
        after=None,
        resource_version=str(int(peer.resource_version) - 1),
    )
    with pytest.raises(
        CalicoConflict, match=r"delete bgppeers\.crd\.projectcalico\.org adc-1: changed since"
    ):
        list(connected.apply((stale,), cluster="prod-1", state_hash="h"))
    assert cluster.server.get(cluster.resource("bgppeers"), "adc-1") is not None


def test_configuration_keeps_fields_the_file_does_not_own(cluster: Cluster, connected: calico.Calico) -> None:
    cluster.server.put(
        {
            "apiVersion": cluster.group,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}], "logSeverityScreen": "Info"},
        }
    )
    current = connected.observe().configuration
    assert current is not None
    change = ConfigurationChange(
        action=Action.UPDATE,
        before=ConfigurationSpec(),
        after=ConfigurationSpec(as_number=64512, node_to_node_mesh=False),
        resource_version=current.resource_version,
    )
    list(connected.apply((change,), cluster="prod-1", state_hash="h"))
    stored = cluster.server.get(cluster.resource("bgpconfigurations"), "default")
    assert stored is not None

    expected = {
        "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
        "logSeverityScreen": "Info",
        "asNumber": 64512,
        "nodeToNodeMeshEnabled": False,
    }
    assert expected == {key: stored["spec"].get(key) for key in expected}


@pytest.mark.parametrize(
    ("mode", "group"), [("v3", "projectcalico.org/v3"), ("both", "projectcalico.org/v3")]
)
def test_the_v3_api_is_preferred_when_served(
    cluster_factory: Callable[..., Cluster], mode: str, group: str
) -> None:
    started = cluster_factory(mode)
    with calico.Calico.connect(started.kubeconfig) as side:
        list(side.apply((create("adc-1"),), cluster="prod-1", state_hash="h"))

        assert side.api_group == group
        assert started.server.get("bgppeers.projectcalico.org", "adc-1") is not None


def test_calico_not_installed_says_so(cluster_factory: Callable[..., Cluster]) -> None:
    started = cluster_factory("none")
    with calico.Calico.connect(started.kubeconfig) as side, pytest.raises(CalicoNotInstalled) as caught:
        side.observe()

    assert str(caught.value) == (
        f"{started.server.url} serves neither projectcalico.org/v3 nor crd.projectcalico.org/v1: "
        "is Calico installed?"
    )


def test_forbidden_names_the_rule_to_add(cluster: Cluster, connected: calico.Calico) -> None:
    cluster.server.inject_fault("list", "bgppeers", status=403)
    with pytest.raises(CalicoForbidden) as caught:
        connected.observe()

    assert str(caught.value) == (
        'not allowed to list bgppeers.crd.projectcalico.org: add the rule {apiGroups: ["crd.projectcalico.org"], '
        'resources: ["bgppeers"], verbs: ["list"]} to the daemon\'s ClusterRole (`peeringd rbac` prints the whole role)'
    )


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_transient(cluster: Cluster, connected: calico.Calico, status: int) -> None:
    cluster.server.inject_fault("list", "ippools", status=status)
    with pytest.raises(CalicoUnavailable) as caught:
        connected.observe()

    assert caught.value.transient
    assert f"list ippools.crd.projectcalico.org: the API server failed ({status})" in str(caught.value)


def test_an_unreachable_server_is_transient(cluster: Cluster) -> None:
    with calico.Calico.connect(cluster.kubeconfig) as side:
        cluster.server.stop()
        with pytest.raises(CalicoUnavailable, match="did not answer"):
            side.observe()


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=f"cannot use kubeconfig {tmp_path}/absent"):
        calico.Calico.connect(tmp_path / "absent")


def test_the_rbac_manifest_allows_every_request_a_pass_makes(
    cluster: Cluster, connected: calico.Calico
) -> None:
    """Least privilege: each (group, resource, verb) the adapter used is granted, by one rule."""
    _, version = connected.list_nodes()
    list(connected.watch_nodes("", version, timeout_seconds=1))
    name = connected.create_node_status("node-1", cluster="prod-1", period=10, expires=datetime.now(UTC))
    connected.extend_node_status(name, datetime.now(UTC))
    connected.node_statuses(cluster="prod-1")
    connected.delete_node_status(name)
    list(connected.apply((create("adc-1"),), cluster="prod-1", state_hash="h"))
    (peer,) = connected.observe().peers
    delete = PeerChange(
        action=Action.DELETE,
        name="adc-1",
        before=PeerSpec(peer_ip="10.0.0.100", as_number=500),
        after=None,
        resource_version=peer.resource_version,
    )
    list(connected.apply((delete,), cluster="prod-1", state_hash="h"))
    documents = list(YAML(typ="safe").load_all(calico.rbac_manifest()))
    (role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    used = {(e.group or "", e.resource, e.verb) for e in cluster.server.journal if e.resource}

    assert used <= granted, used - granted


def test_an_object_the_crd_refuses_is_invalid_with_the_servers_words(
    cluster: Cluster, connected: calico.Calico
) -> None:
    """Someone gave our peer a peerSelector: the CRD's rule refuses our peerIP beside it (422)."""
    list(connected.apply((create("adc-1"),), cluster="prod-1", state_hash="h"))
    edited = cluster.server.get(cluster.resource("bgppeers"), "adc-1")
    assert edited is not None
    edited["spec"] = {"peerSelector": "role == 'adc'"}
    cluster.server.put(edited)
    (peer,) = connected.observe().peers
    update = PeerChange(
        action=Action.UPDATE,
        name="adc-1",
        before=PeerSpec(peer_ip="", as_number=None),
        after=PeerSpec(peer_ip="10.0.0.100", as_number=500),
        resource_version=peer.resource_version,
    )
    with pytest.raises(CalicoInvalid) as caught:
        list(connected.apply((update,), cluster="prod-1", state_hash="h"))

    assert str(caught.value).startswith(
        "patch bgppeers.crd.projectcalico.org adc-1: the API server refused it: "
    )
    assert "peerIP and peerSelector cannot both be set" in str(caught.value)


def hand_made_peer(started: Cluster, keepalive: str = "30s") -> None:
    """The seed procedure's BGPPeer, with a field and a label peeringd does not own."""
    started.server.put(
        {
            "apiVersion": started.group,
            "kind": "BGPPeer",
            "metadata": {"name": "bgppeer-global-3040", "labels": {"team": "network"}},
            "spec": {"peerIP": "10.0.0.100", "asNumber": 500, "keepaliveTime": keepalive},
        }
    )


def marks_change(action: Action, resource_version: str) -> PeerChange:
    spec = PeerSpec(peer_ip="10.0.0.100", as_number=500)
    return PeerChange(
        action=action,
        name="bgppeer-global-3040",
        adc="adc-1",
        before=spec,
        after=spec,
        resource_version=resource_version,
    )


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_adoption_patches_the_marks_alone_and_release_takes_them_off(
    cluster_factory: Callable[..., Cluster], api: str
) -> None:
    """One merge patch each, carrying the version read; name, spec and others' labels stay."""
    started = cluster_factory(api)
    hand_made_peer(started)
    original = started.server.get(started.resource("bgppeers"), "bgppeer-global-3040")
    assert original is not None
    with calico.Calico.connect(started.kubeconfig) as side:
        (peer,) = side.observe().peers
        started.server.clear_journal()
        list(
            side.apply((marks_change(Action.ADOPT, peer.resource_version),), cluster="prod-1", state_hash="h")
        )
        adopted = started.server.get(started.resource("bgppeers"), "bgppeer-global-3040")
        (observed,) = side.observe().peers
        list(
            side.apply(
                (marks_change(Action.RELEASE, observed.resource_version),), cluster="prod-1", state_hash="h"
            )
        )
        released = started.server.get(started.resource("bgppeers"), "bgppeer-global-3040")
    assert adopted is not None
    assert released is not None

    assert adopted["spec"] == original["spec"]
    assert adopted["metadata"]["labels"] == {"team": "network", ownership.MANAGED_BY_LABEL: "peeringd"}
    assert adopted["metadata"]["annotations"] == {
        ownership.CLUSTER_ANNOTATION: "prod-1",
        ownership.STATE_HASH_ANNOTATION: "h",
        ownership.ADC_ANNOTATION: "adc-1",
    }
    assert ownership.owns_peer(observed, "prod-1")
    assert ownership.peer_adc(observed) == "adc-1"
    assert [(e.verb, e.name) for e in started.server.journal if e.verb not in {"list", "get"}] == [
        ("patch", "bgppeer-global-3040"),
        ("patch", "bgppeer-global-3040"),
    ]
    assert released["spec"] == original["spec"]
    assert released["metadata"]["labels"] == {"team": "network"}
    assert released["metadata"].get("annotations", {}) == {}
    assert [item["metadata"]["name"] for item in started.server.objects(started.resource("bgppeers"))] == [
        "bgppeer-global-3040"
    ]


def test_an_adoption_of_a_peer_changed_since_it_was_read_is_a_conflict(
    cluster: Cluster, connected: calico.Calico
) -> None:
    hand_made_peer(cluster)
    (peer,) = connected.observe().peers
    hand_made_peer(cluster, keepalive="40s")  # someone changes it in between
    with pytest.raises(
        CalicoConflict, match=r"patch bgppeers\.crd\.projectcalico\.org bgppeer-global-3040: changed"
    ):
        list(
            connected.apply(
                (marks_change(Action.ADOPT, peer.resource_version),), cluster="prod-1", state_hash="h"
            )
        )

    stored = cluster.server.get(cluster.resource("bgppeers"), "bgppeer-global-3040")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"team": "network"}
