"""The lab's Kubernetes API server, driven by the official kubernetes client over HTTP."""

from __future__ import annotations

import filecmp
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.dynamic import DynamicClient

from peeringd.lab.kubeapi import (
    BUNDLED_CRDS,
    WRITE_VERBS,
    CalicoApi,
    JournalEntry,
    KubeApiError,
    KubeApiServer,
)
from tests.conftest import CRD_SOURCE, CRDS

needs_crds = pytest.mark.skipif(not CRDS.is_dir(), reason=f"{CRDS} is absent")

V1 = ("crd.projectcalico.org", "v1")
V3 = ("projectcalico.org", "v3")
FORBIDDEN = (
    'bgppeers.crd.projectcalico.org is forbidden: User "system:serviceaccount:peeringd:peeringd"'
    ' cannot list resource "bgppeers" in API group "crd.projectcalico.org" at the cluster scope'
)
# A valid spec of each Calico kind, and a valid change of it.
SPECS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "bgppeers": ("BGPPeer", {"peerIP": "10.0.0.1", "asNumber": 65001}, {"asNumber": 65002}),
    "bgpconfigurations": ("BGPConfiguration", {"asNumber": 64512}, {"nodeToNodeMeshEnabled": False}),
    "ippools": ("IPPool", {"cidr": "10.244.0.0/16", "ipipMode": "Never"}, {"natOutgoing": True}),
    "caliconodestatuses": (
        "CalicoNodeStatus",
        {"node": "node-1", "classes": ["BGP"], "updatePeriodSeconds": 10},
        {"updatePeriodSeconds": 30},
    ),
}

POOL_V3 = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "IPPool",
    "metadata": {"name": "pool"},
    "spec": {"cidr": "10.0.0.0/16"},
}
CONDITION = {
    "type": "Allocatable",
    "status": "True",
    "reason": "Ok",
    "message": "",
    "lastTransitionTime": "2025-01-01T00:00:00Z",
}


def api_client(server: KubeApiServer, tmp_path: Path) -> client.ApiClient:
    """A client configured the way peeringd is: from the kubeconfig the server writes."""
    configuration = client.Configuration()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def core_api(api: client.ApiClient) -> Any:
    """CoreV1Api, typed loosely: every field of its models is optional."""
    return client.CoreV1Api(api)


def custom_api(api: client.ApiClient) -> Any:
    """CustomObjectsApi, typed loosely: it returns plain JSON typed as `object`."""
    return client.CustomObjectsApi(api)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[KubeApiServer, client.ApiClient]]]:
    """Start servers (stopped at teardown) and hand back each with a client for it."""
    servers: list[KubeApiServer] = []

    def start(calico_api: CalicoApi = "v1", **options: Any) -> tuple[KubeApiServer, client.ApiClient]:
        options.setdefault("crds", CRD_SOURCE)
        server = KubeApiServer(calico_api=calico_api, **options)
        server.start()
        servers.append(server)
        return server, api_client(server, tmp_path)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def calico(
    serve: Callable[..., tuple[KubeApiServer, client.ApiClient]],
) -> tuple[KubeApiServer, client.CustomObjectsApi]:
    """A server with the v1 CRDs of a default install."""
    server, api = serve("v1")
    return server, custom_api(api)


def peer(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": {"peerIP": "10.0.0.1", "asNumber": 65001, **spec},
    }


def node(name: str, address: str = "10.0.0.1", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def status_of(error: pytest.ExceptionInfo[client.ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.value.body or "{}")
    return body


def collect(stream: Iterator[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    """The first `count` events of a watch as (type, name)."""
    events = []
    for event in stream:
        obj = event["object"]
        name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
        events.append((event["type"], name))
        if len(events) == count:
            break
    return events


class TestDiscovery:
    """Which groups and resources discovery shows, per Calico installation mode."""

    @pytest.mark.parametrize(
        ("mode", "groups"),
        [
            ("v1", {"crd.projectcalico.org"}),
            ("v3", {"projectcalico.org"}),
            ("both", {"crd.projectcalico.org", "projectcalico.org"}),
            ("none", set()),
        ],
    )
    def test_served_groups_follow_the_mode(self, serve: Any, mode: CalicoApi, groups: set[str]) -> None:
        """/apis lists exactly the Calico groups of the mode, beside the built-in Lease and RBAC groups."""
        _, api = serve(mode)
        served = {group.name for group in client.ApisApi(api).get_api_versions().groups}
        assert served == {"coordination.k8s.io", "rbac.authorization.k8s.io", *groups}

    def test_resource_list_describes_each_kind(self, serve: Any) -> None:
        """APIResourceList entries carry the CRD's names, cluster scope and verbs."""
        _, api = serve("v1")
        resources = api.call_api(*api.param_serialize("GET", "/apis/crd.projectcalico.org/v1"))
        resources.read()
        by_name = {r["name"]: r for r in json.loads(resources.data)["resources"]}
        assert set(by_name) == {"bgppeers", "bgpconfigurations", "ippools", "caliconodestatuses"}
        assert by_name["bgppeers"]["singularName"] == "bgppeer"
        assert by_name["bgppeers"]["kind"] == "BGPPeer"
        assert by_name["bgppeers"]["namespaced"] is False
        assert {"create", "get", "list", "watch", "update", "patch", "delete"} <= set(
            by_name["bgppeers"]["verbs"]
        )

    def test_status_subresource_only_where_the_crd_declares_it(self, serve: Any) -> None:
        """The v3 IPPool CRD has a status subresource; the v3 BGPPeer CRD has none."""
        _, api = serve("v3")
        resource_list = custom_api(api).get_api_resources(*V3)
        names = {resource.name for resource in resource_list.resources}
        assert "ippools/status" in names
        assert "bgppeers/status" not in names

    def test_calico_paths_are_not_found_without_calico(self, serve: Any) -> None:
        """With Calico absent, its group answers 404 like any unknown group."""
        _, api = serve("none")
        with pytest.raises(client.ApiException) as error:
            custom_api(api).list_cluster_custom_object(*V1, "bgppeers")
        assert error.value.status == 404
        assert status_of(error)["message"] == "the server could not find the requested resource"

    def test_dynamic_client_finds_kinds(self, serve: Any, tmp_path: Path) -> None:
        """The DynamicClient discovers Calico kinds and Nodes and lists them."""
        server, api = serve("both")
        server.put(node("node-1"))
        dynamic = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
        peers = dynamic.resources.get(api_version="projectcalico.org/v3", kind="BGPPeer")
        nodes = dynamic.resources.get(api_version="v1", kind="Node")
        assert peers.namespaced is False
        assert peers.get().items == []
        assert [item.metadata.name for item in nodes.get().items] == ["node-1"]

    def test_version(self, serve: Any) -> None:
        """/version answers like a Kubernetes 1.33 server."""
        _, api = serve("none")
        assert client.VersionApi(api).get_code().git_version.startswith("v1.")


class TestCrud:
    """Create, read, replace, patch and delete each Calico kind."""

    @pytest.mark.parametrize("plural", sorted(SPECS))
    def test_lifecycle(self, calico: Any, plural: str) -> None:
        """Each write bumps resourceVersion; spec changes bump generation; delete removes."""
        _, objects = calico
        kind, spec, change = SPECS[plural]
        body = {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": kind,
            "metadata": {"name": "default"},
            "spec": spec,
        }

        created = objects.create_cluster_custom_object(*V1, plural, body)
        assert created["metadata"]["generation"] == 1
        assert created["metadata"]["uid"]
        assert objects.get_cluster_custom_object(*V1, plural, "default") == created
        listed = objects.list_cluster_custom_object(*V1, plural)
        assert listed["kind"] == f"{kind}List"
        assert [item["metadata"]["name"] for item in listed["items"]] == ["default"]

        replaced = objects.replace_cluster_custom_object(
            *V1, plural, "default", {**created, "spec": {**spec, **change}}
        )
        assert replaced["spec"] == {**created["spec"], **change}
        assert replaced["metadata"]["generation"] == 2
        assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

        merged = objects.patch_cluster_custom_object(
            *V1, plural, "default", {"metadata": {"labels": {"a": "b"}}}
        )
        assert merged["metadata"]["labels"] == {"a": "b"}
        assert merged["metadata"]["generation"] == 2

        operations = [{"op": "remove", "path": "/metadata/labels/a"}]
        patched = objects.patch_cluster_custom_object(
            *V1, plural, "default", operations, _content_type="application/json-patch+json"
        )
        assert patched["metadata"].get("labels") == {}

        objects.delete_cluster_custom_object(*V1, plural, "default")
        with pytest.raises(client.ApiException) as error:
            objects.get_cluster_custom_object(*V1, plural, "default")
        assert error.value.status == 404

    def test_create_existing_name_is_already_exists(self, calico: Any) -> None:
        """A second create of one name answers 409 AlreadyExists."""
        _, objects = calico
        objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        with pytest.raises(client.ApiException) as error:
            objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        assert error.value.status == 409
        assert status_of(error)["reason"] == "AlreadyExists"
        assert status_of(error)["message"] == 'bgppeers.crd.projectcalico.org "adc-1" already exists'

    def test_stale_resource_version_is_a_conflict(self, calico: Any) -> None:
        """Replacing with an outdated resourceVersion answers 409 Conflict."""
        server, objects = calico
        stale = objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        server.put(peer("adc-1", asNumber=65009))
        with pytest.raises(client.ApiException) as error:
            objects.replace_cluster_custom_object(*V1, "bgppeers", "adc-1", stale)
        assert error.value.status == 409
        assert status_of(error)["reason"] == "Conflict"
        assert status_of(error)["message"] == (
            'Operation cannot be fulfilled on bgppeers.crd.projectcalico.org "adc-1": the object has'
            " been modified; please apply your changes to the latest version and try again"
        )

    def test_replace_without_resource_version_is_unconditional(self, calico: Any) -> None:
        """A body without resourceVersion overwrites whatever is stored."""
        server, objects = calico
        objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        server.put(peer("adc-1", asNumber=65009))
        replaced = objects.replace_cluster_custom_object(
            *V1, "bgppeers", "adc-1", peer("adc-1", asNumber=65010)
        )
        assert replaced["spec"]["asNumber"] == 65010

    def test_identical_replace_writes_nothing(self, calico: Any) -> None:
        """A no-op update keeps the resourceVersion, as etcd skips identical writes."""
        _, objects = calico
        created = objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        replaced = objects.replace_cluster_custom_object(*V1, "bgppeers", "adc-1", created)
        assert replaced["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    def test_not_found_status(self, calico: Any) -> None:
        """A missing object answers a Status shaped like the real one."""
        _, objects = calico
        with pytest.raises(client.ApiException) as error:
            objects.get_cluster_custom_object(*V1, "bgppeers", "x")
        assert error.value.status == 404
        assert status_of(error) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'bgppeers.crd.projectcalico.org "x" not found',
            "reason": "NotFound",
            "details": {"name": "x", "group": "crd.projectcalico.org", "kind": "bgppeers"},
            "code": 404,
        }

    def test_update_and_delete_of_missing_object_are_not_found(self, calico: Any) -> None:
        """PUT and DELETE of an absent name answer 404."""
        _, objects = calico
        with pytest.raises(client.ApiException) as replace_error:
            objects.replace_cluster_custom_object(*V1, "bgppeers", "x", peer("x"))
        with pytest.raises(client.ApiException) as delete_error:
            objects.delete_cluster_custom_object(*V1, "bgppeers", "x")
        assert (replace_error.value.status, delete_error.value.status) == (404, 404)

    def test_strategic_merge_patch_is_unsupported_for_custom_resources(self, calico: Any) -> None:
        """Custom resources refuse strategic merge patches with 415."""
        _, objects = calico
        objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        with pytest.raises(client.ApiException) as error:
            objects.patch_cluster_custom_object(
                *V1, "bgppeers", "adc-1", {"spec": {}}, _content_type="application/strategic-merge-patch+json"
            )
        assert error.value.status == 415


class TestValidation:
    """Schema pruning, defaults and validation from the bundled CRDs."""

    @pytest.mark.parametrize(
        ("body", "field", "reason"),
        [
            (peer("adc-1", asNumber=2147483648), "spec.asNumber", "FieldValueInvalid"),
            (peer("adc-1", nextHopMode="Sometimes"), "spec.nextHopMode", "FieldValueNotSupported"),
            (peer("Bad_Name"), "metadata.name", "FieldValueInvalid"),
            (peer("adc-1", asNumber="65001"), "spec.asNumber", "FieldValueTypeInvalid"),
            (peer("adc-1", node="node-1", nodeSelector="all()"), "spec", "FieldValueForbidden"),
        ],
    )
    def test_invalid_objects_are_rejected(
        self, calico: Any, body: dict[str, Any], field: str, reason: str
    ) -> None:
        """Invalid objects answer 422 Invalid with the offending field among the causes."""
        _, objects = calico
        with pytest.raises(client.ApiException) as error:
            objects.create_cluster_custom_object(*V1, "bgppeers", body)
        assert error.value.status == 422
        status = status_of(error)
        assert status["reason"] == "Invalid"
        assert (field, reason) in {(c["field"], c["reason"]) for c in status["details"]["causes"]}

    def test_int32_message(self, calico: Any) -> None:
        """An AS number beyond int32 is refused with the API server's wording."""
        _, objects = calico
        with pytest.raises(client.ApiException) as error:
            objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1", asNumber=2147483648))
        assert status_of(error)["message"] == (
            'BGPPeer.crd.projectcalico.org "adc-1" is invalid: spec.asNumber: Invalid value: 2147483648:'
            ' spec.asNumber in body must be of type int32: "2147483648"'
        )

    def test_unknown_fields_are_pruned_with_a_warning(self, calico: Any) -> None:
        """Undeclared fields are dropped and reported in a Warning header."""
        _, objects = calico
        created, _, headers = objects.create_cluster_custom_object_with_http_info(
            *V1, "bgppeers", peer("adc-1", bogus=1)
        )
        assert "bogus" not in created["spec"]
        assert "bogus" not in objects.get_cluster_custom_object(*V1, "bgppeers", "adc-1")["spec"]
        assert headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""'

    def test_strict_field_validation_refuses_unknown_fields(self, calico: Any) -> None:
        """fieldValidation=Strict turns an unknown field into 400 BadRequest."""
        _, objects = calico
        with pytest.raises(client.ApiException) as error:
            objects.create_cluster_custom_object(
                *V1, "bgppeers", peer("adc-1", bogus=1), field_validation="Strict"
            )
        assert error.value.status == 400
        assert 'unknown field "spec.bogus"' in status_of(error)["message"]

    def test_defaults_are_applied(self, calico: Any) -> None:
        """Schema defaults fill absent fields (IPPool assignmentMode)."""
        _, objects = calico
        pool = {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": {"name": "pool"},
            "spec": {"cidr": "10.0.0.0/16"},
        }
        assert (
            objects.create_cluster_custom_object(*V1, "ippools", pool)["spec"]["assignmentMode"]
            == "Automatic"
        )

    def test_transition_rules_apply_on_update(self, calico: Any) -> None:
        """`self == oldSelf` rules let a pool be created but not its CIDR changed."""
        _, objects = calico
        pool = {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": {"name": "pool"},
            "spec": {"cidr": "10.0.0.0/16"},
        }
        objects.create_cluster_custom_object(*V1, "ippools", pool)
        with pytest.raises(client.ApiException) as error:
            objects.patch_cluster_custom_object(*V1, "ippools", "pool", {"spec": {"cidr": "10.1.0.0/16"}})
        assert error.value.status == 422
        assert "CIDR cannot be changed" in status_of(error)["message"]

    def test_older_crds_accept_what_newer_refuse(self, serve: Any) -> None:
        """The v3.31.7 CRDs carry no CEL rules: node and nodeSelector together pass."""
        _, api = serve("v1", crds=CRD_SOURCE / "v3.31.7")
        body = peer("adc-1", node="node-1", nodeSelector="all()")
        created = custom_api(api).create_cluster_custom_object(*V1, "bgppeers", body)
        assert created["spec"]["nodeSelector"] == "all()"


class TestStatusSubresource:
    """Where a CRD has a status subresource, spec and status are written apart."""

    def test_status_is_written_only_through_the_subresource(self, serve: Any) -> None:
        """Create and main updates ignore status; /status updates change only status."""
        _, api = serve("v3")
        objects = custom_api(api)
        created = objects.create_cluster_custom_object(
            *V3, "ippools", {**POOL_V3, "status": {"conditions": [CONDITION]}}
        )
        assert "status" not in created

        with_status = {
            **created,
            "status": {"conditions": [CONDITION]},
            "spec": {**created["spec"], "natOutgoing": True},
        }
        updated = objects.replace_cluster_custom_object_status(*V3, "ippools", "pool", with_status)
        assert updated["status"]["conditions"][0]["type"] == "Allocatable"
        assert "natOutgoing" not in updated["spec"]
        assert updated["metadata"]["generation"] == 1

        replaced = objects.replace_cluster_custom_object(*V3, "ippools", "pool", {**updated, "status": {}})
        assert replaced["status"] == updated["status"]

    def test_without_subresource_status_is_part_of_the_object(self, calico: Any) -> None:
        """v1 CalicoNodeStatus has no status subresource: a plain update writes status."""
        _, objects = calico
        kind, spec, _ = SPECS["caliconodestatuses"]
        body = {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": kind,
            "metadata": {"name": "node-1"},
            "spec": spec,
        }
        created = objects.create_cluster_custom_object(*V1, "caliconodestatuses", body)
        status = {"agent": {"birdV4": {"state": "Ready"}}}
        updated = objects.replace_cluster_custom_object(
            *V1, "caliconodestatuses", "node-1", {**created, "status": status}
        )
        assert updated["status"] == status


class TestNodes:
    """Core v1 Nodes through CoreV1Api."""

    def test_label_selectors(self, serve: Any) -> None:
        """Equality and set-based selectors pick the right nodes."""
        server, api = serve("none")
        server.put(node("a", role="worker", zone="z1"))
        server.put(node("b", role="edge", zone="z1"))
        server.put(node("c"))
        core = core_api(api)
        cases = {
            "role=worker": ["a"],
            "role==worker": ["a"],
            "role!=worker": ["b", "c"],
            "role in (worker,edge)": ["a", "b"],
            "role notin (worker)": ["b", "c"],
            "role": ["a", "b"],
            "!role": ["c"],
            "role=edge,zone=z1": ["b"],
            "zone in (z1),role notin (edge)": ["a"],
        }
        found = {s: [n.metadata.name for n in core.list_node(label_selector=s).items] for s in cases}
        assert found == cases
        assert [n.metadata.name for n in core.list_node(field_selector="metadata.name=c").items] == ["c"]

    def test_bad_selector_is_a_bad_request(self, serve: Any) -> None:
        """An unparsable selector answers 400."""
        _, api = serve("none")
        with pytest.raises(client.ApiException) as error:
            core_api(api).list_node(label_selector="role in worker")
        assert error.value.status == 400

    def test_status_is_kept_apart(self, serve: Any) -> None:
        """replace_node keeps status; patch_node_status changes it; patch_node merges labels."""
        server, api = serve("none")
        core = core_api(api)
        core.create_node(node("a", address="10.0.0.1", role="worker"))
        current = core.read_node("a")
        current.status.addresses[0].address = "10.9.9.9"
        assert core.replace_node("a", current).status.addresses[0].address == "10.0.0.1"
        patched = core.patch_node_status(
            "a", {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}
        )
        assert patched.status.addresses[0].address == "10.0.0.2"
        labelled = core.patch_node("a", {"metadata": {"labels": {"zone": "z1"}}})
        assert labelled.metadata.labels == {"role": "worker", "zone": "z1"}
        assert server.get("nodes", "a") is not None
        core.delete_node("a")
        assert server.get("nodes", "a") is None

    def test_paging(self, serve: Any) -> None:
        """limit and continue walk 5,000 nodes in pages, in name order."""
        server, api = serve("none")
        for index in range(5000):
            server.put(node(f"node-{index:04d}", address=f"10.{index // 250}.{index % 250}.1"))
        core = core_api(api)
        names, token = [], None
        while True:
            page = core.list_node(limit=2000, _continue=token)
            names += [n.metadata.name for n in page.items]
            token = page.metadata._continue
            if not token:
                break
        assert names == [f"node-{index:04d}" for index in range(5000)]
        assert len(core.list_node().items) == 5000


class TestWatch:
    """Watch streams: events after a resourceVersion, selectors, 410 Gone, shutdown."""

    def test_events_after_a_resource_version(self, serve: Any) -> None:
        """Create, modify and delete arrive in order, as a selector sees them."""
        server, api = serve("none")
        core = core_api(api)
        since = core.list_node().metadata.resource_version
        server.put(node("a", role="worker"))
        server.put(node("b", role="edge"))
        server.put(node("a", address="10.0.0.2", role="worker"))
        server.put(node("b", role="worker"))  # enters the selection
        server.put(node("a", role="edge"))  # leaves it
        server.delete("nodes", "b")
        stream = watch.Watch().stream(
            core.list_node, label_selector="role=worker", resource_version=since, timeout_seconds=5
        )
        assert collect(stream, 5) == [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("ADDED", "b"),
            ("DELETED", "a"),
            ("DELETED", "b"),
        ]

    def test_without_resource_version_the_current_objects_come_first(self, serve: Any) -> None:
        """A watch from "now" starts with ADDED for every existing object."""
        server, api = serve("none")
        server.put(node("a"))
        server.put(node("b"))
        stream = watch.Watch().stream(core_api(api).list_node, timeout_seconds=5)
        assert collect(stream, 2) == [("ADDED", "a"), ("ADDED", "b")]

    def test_custom_objects_are_watched_live(self, calico: Any) -> None:
        """A watch on BGPPeers sees a create made after it started."""
        server, objects = calico
        since = objects.list_cluster_custom_object(*V1, "bgppeers")["metadata"]["resourceVersion"]
        server.before_request("watch", "bgppeers", lambda _: server.put(peer("adc-1")))
        stream = watch.Watch().stream(
            objects.list_cluster_custom_object, *V1, "bgppeers", resource_version=since, timeout_seconds=5
        )
        assert collect(stream, 1) == [("ADDED", "adc-1")]

    def test_too_old_resource_version_is_gone(self, serve: Any) -> None:
        """Beyond the kept history, a watch gets an ERROR event with code 410."""
        server, api = serve("none", history_limit=2)
        for name in ("a", "b", "c", "d"):
            server.put(node(name))
        with pytest.raises(client.ApiException) as error:
            list(watch.Watch().stream(core_api(api).list_node, resource_version="1", timeout_seconds=5))
        assert error.value.status == 410

    def test_streams_end_when_the_server_stops(self, serve: Any) -> None:
        """An open watch without timeout ends once the server stops."""
        server, api = serve("none")
        response = core_api(api).list_node(watch=True, _preload_content=False)
        ended = threading.Event()

        def drain() -> None:
            for _ in response.stream():
                pass
            ended.set()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        server.stop()
        assert ended.wait(timeout=10)


class TestFaults:
    """Injected failures and callbacks, for tests of the client's error handling."""

    def test_forbidden(self, calico: Any) -> None:
        """A 403 carries the RBAC wording of a real server."""
        server, objects = calico
        server.inject_fault("list", "bgppeers", status=403)
        with pytest.raises(client.ApiException) as error:
            objects.list_cluster_custom_object(*V1, "bgppeers")
        assert error.value.status == 403
        assert status_of(error)["message"] == FORBIDDEN

    def test_fault_applies_to_the_next_requests_only(self, calico: Any) -> None:
        """`times` bounds a fault: the third list succeeds after two 500s."""
        server, objects = calico
        server.inject_fault("list", "bgppeers", status=500, times=2)
        for _ in range(2):
            with pytest.raises(client.ApiException) as error:
                objects.list_cluster_custom_object(*V1, "bgppeers")
            assert error.value.status == 500
        assert objects.list_cluster_custom_object(*V1, "bgppeers")["items"] == []

    def test_delay_trips_a_client_timeout(self, serve: Any) -> None:
        """A delayed answer lets a client's read timeout fire."""
        server, api = serve("none")
        server.inject_fault("list", "nodes", delay=5, times=4)  # urllib3 retries 3 times
        with pytest.raises(urllib3.exceptions.MaxRetryError) as error:
            core_api(api).list_node(_request_timeout=(1, 0.2))
        assert isinstance(error.value.reason, urllib3.exceptions.ReadTimeoutError)

    def test_callback_simulates_a_concurrent_edit(self, calico: Any) -> None:
        """An edit slipped in before the update makes the update conflict."""
        server, objects = calico
        current = objects.create_cluster_custom_object(*V1, "bgppeers", peer("adc-1"))
        server.before_request(
            "update", "bgppeers", lambda _: server.put(peer("adc-1", asNumber=65009)), name="adc-1"
        )
        with pytest.raises(client.ApiException) as error:
            objects.replace_cluster_custom_object(
                *V1, "bgppeers", "adc-1", {**current, "spec": {"peerIP": "10.0.0.2"}}
            )
        assert error.value.status == 409


class TestJournal:
    """The journal records what a client sent."""

    def test_counts_by_verb_and_resource(self, calico: Any) -> None:
        """A read-modify-write is one get and one update; lists keep their query."""
        server, objects = calico
        server.put(peer("adc-1"))
        current = objects.get_cluster_custom_object(*V1, "bgppeers", "adc-1")
        objects.replace_cluster_custom_object(
            *V1, "bgppeers", "adc-1", {**current, "spec": {"peerIP": "10.0.0.2"}}
        )
        objects.list_cluster_custom_object(*V1, "bgppeers", label_selector="a=b")
        assert server.count() == 3
        assert server.count("get") == 1
        assert server.count(*WRITE_VERBS) == 1
        assert server.count(resource="bgppeers", group="crd.projectcalico.org") == 3
        assert server.journal[-1] == JournalEntry(
            method="GET",
            path="/apis/crd.projectcalico.org/v1/bgppeers",
            query={"labelSelector": "a=b"},
            verb="list",
            group="crd.projectcalico.org",
            resource="bgppeers",
            user_agent=f"OpenAPI-Generator/{kubernetes.__version__}/python",
        )
        server.clear_journal()
        assert server.journal == []


class TestDirectAccess:
    """put/get/objects/delete without HTTP."""

    def test_round_trip(self) -> None:
        """Direct access needs no running server: put, get, objects and delete round-trip."""
        server = KubeApiServer(BUNDLED_CRDS, "none")
        stored = server.put(node("a"))
        assert stored["metadata"]["resourceVersion"].isdigit()
        assert server.get("nodes", "a") == stored
        assert [obj["metadata"]["name"] for obj in server.objects("nodes")] == ["a"]
        assert server.delete("nodes", "a")
        assert not server.delete("nodes", "a")

    def test_invalid_direct_write_raises(self) -> None:
        """Direct writes are validated too."""
        server = KubeApiServer(BUNDLED_CRDS, "v1")
        with pytest.raises(KubeApiError) as error:
            server.put(peer("adc-1", asNumber=2147483648))
        assert error.value.code == 422


class TestBundledCrds:
    """The package ships the upstream CRDs unchanged."""

    @needs_crds
    def test_bundled_copy_is_identical(self) -> None:
        """Every file of shared/calico-crds is in the package, byte for byte."""
        files = sorted(str(path.relative_to(CRDS)) for path in CRDS.rglob("*") if path.is_file())
        bundled = sorted(
            str(path.relative_to(BUNDLED_CRDS)) for path in BUNDLED_CRDS.rglob("*") if path.is_file()
        )
        assert files == bundled
        _, mismatches, errors = filecmp.cmpfiles(CRDS, BUNDLED_CRDS, files, shallow=False)
        assert (mismatches, errors) == ([], [])

    def test_default_server_uses_the_bundled_v1_crds(self, tmp_path: Path) -> None:
        """Without arguments the server serves crd.projectcalico.org/v1 from the package."""
        with KubeApiServer() as server:
            api = api_client(server, tmp_path)
            assert custom_api(api).list_cluster_custom_object(*V1, "ippools")["items"] == []
