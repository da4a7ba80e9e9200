"""The lab's API server's namespaced kinds (Secrets, Leases, namespaced CRDs) and Namespaces,
driven by the official kubernetes client over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from peeringd.lab.kubeapi import KubeApiServer
from tests.kubeapi.test_kubeapi_server import api_client, collect, status_of

LEASES = "leases.coordination.k8s.io"
RENEWED = "2026-01-02T03:04:05.123456Z"

Serve = Callable[..., tuple[KubeApiServer, client.ApiClient]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start servers without Calico (stopped at teardown), each with a client for it."""
    servers: list[KubeApiServer] = []

    def start(**options: Any) -> tuple[KubeApiServer, client.ApiClient]:
        server = KubeApiServer(calico_api="none", **options)
        server.start()
        servers.append(server)
        return server, api_client(server, tmp_path)

    yield start
    for server in servers:
        server.stop()


def lease(name: str, namespace: str | None = "kube-system", **spec: Any) -> dict[str, Any]:
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": RENEWED, **spec},
    }


def secret(name: str, namespace: str = "default", **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        **fields,
    }


def coordination(api: client.ApiClient) -> Any:
    """CoordinationV1Api, typed loosely: every field of its models is optional."""
    return client.CoordinationV1Api(api)


def core(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def raw(api: client.ApiClient, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One request as is, whatever its answer: for paths and bodies the generated client (which
    validates bodies against its models) cannot express."""
    response = api.call_api(*api.param_serialize(method, path, body=body))
    response.read()
    return response.status, json.loads(response.data or b"{}")


class TestDiscovery:
    """Discovery tells namespaced kinds from cluster-scoped ones."""

    def test_core_and_coordination_resources(self, serve: Serve) -> None:
        """Namespaces are cluster-scoped; Secrets and Leases are namespaced."""
        _, api = serve()
        core_resources = {r.name: r.namespaced for r in core(api).get_api_resources().resources}
        leases = {r.name: r.namespaced for r in coordination(api).get_api_resources().resources}
        assert {name: core_resources[name] for name in ("namespaces", "nodes", "secrets")} == {
            "namespaces": False,
            "nodes": False,
            "secrets": True,
        }
        assert leases == {"leases": True}

    def test_the_initial_namespaces_exist(self, serve: Serve) -> None:
        """A new server has kube-apiserver's four Namespaces, Active."""
        _, api = serve()
        found = {n.metadata.name: n.status.phase for n in core(api).list_namespace().items}
        assert found == dict.fromkeys(("default", "kube-node-lease", "kube-public", "kube-system"), "Active")


class TestLeases:
    """Leases through CoordinationV1Api: the requests leader election makes."""

    def test_lifecycle(self, serve: Serve) -> None:
        """Create, read, replace with the read resourceVersion, list, delete."""
        _, api = serve()
        leases = coordination(api)
        created = leases.create_namespaced_lease("kube-system", lease("peeringd"))
        assert created.metadata.namespace == "kube-system"
        read = leases.read_namespaced_lease("peeringd", "kube-system")
        assert read.spec.holder_identity == "a"
        read.spec.holder_identity = "b"
        replaced = leases.replace_namespaced_lease("peeringd", "kube-system", read)
        assert replaced.spec.holder_identity == "b"
        assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
        assert [item.metadata.name for item in leases.list_namespaced_lease("kube-system").items] == [
            "peeringd"
        ]
        leases.delete_namespaced_lease("peeringd", "kube-system")
        assert leases.list_namespaced_lease("kube-system").items == []

    def test_a_stale_replace_is_a_conflict(self, serve: Serve) -> None:
        """Two candidates that read the same version: the second replace gets 409."""
        _, api = serve()
        leases = coordination(api)
        leases.create_namespaced_lease("kube-system", lease("peeringd"))
        first = leases.read_namespaced_lease("peeringd", "kube-system")
        second = leases.read_namespaced_lease("peeringd", "kube-system")
        first.spec.holder_identity = "b"
        leases.replace_namespaced_lease("peeringd", "kube-system", first)
        second.spec.holder_identity = "c"
        with pytest.raises(client.ApiException) as error:
            leases.replace_namespaced_lease("peeringd", "kube-system", second)
        assert error.value.status == 409
        assert status_of(error)["message"] == (
            'Operation cannot be fulfilled on leases.coordination.k8s.io "peeringd": the object has'
            " been modified; please apply your changes to the latest version and try again"
        )

    def test_a_second_create_already_exists(self, serve: Serve) -> None:
        """Two candidates creating the Lease at once: one gets 409 AlreadyExists."""
        _, api = serve()
        leases = coordination(api)
        leases.create_namespaced_lease("kube-system", lease("peeringd"))
        with pytest.raises(client.ApiException) as error:
            leases.create_namespaced_lease("kube-system", lease("peeringd", holderIdentity="b"))
        assert (error.value.status, status_of(error)["reason"]) == (409, "AlreadyExists")
        assert status_of(error)["message"] == 'leases.coordination.k8s.io "peeringd" already exists'

    def test_not_found_status(self, serve: Serve) -> None:
        """A missing Lease answers the real Status, group and plural in its details."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            coordination(api).read_namespaced_lease("peeringd", "kube-system")
        assert status_of(error) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'leases.coordination.k8s.io "peeringd" not found',
            "reason": "NotFound",
            "details": {"name": "peeringd", "group": "coordination.k8s.io", "kind": "leases"},
            "code": 404,
        }

    def test_one_name_in_two_namespaces_is_two_objects(self, serve: Serve) -> None:
        """Names are unique per namespace; a list across namespaces shows both, by namespace."""
        _, api = serve()
        leases = coordination(api)
        leases.create_namespaced_lease("kube-system", lease("peeringd"))
        leases.create_namespaced_lease("default", lease("peeringd", None, holderIdentity="b"))
        everywhere = leases.list_lease_for_all_namespaces().items
        assert [(i.metadata.namespace, i.spec.holder_identity) for i in everywhere] == [
            ("default", "b"),
            ("kube-system", "a"),
        ]
        assert [i.metadata.namespace for i in leases.list_namespaced_lease("default").items] == ["default"]

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            (
                {"leaseDurationSeconds": 0},
                'Lease.coordination.k8s.io "peeringd" is invalid: spec.leaseDurationSeconds:'
                " Invalid value: 0: must be greater than 0",
            ),
            (
                {"leaseTransitions": -1},
                'Lease.coordination.k8s.io "peeringd" is invalid: spec.leaseTransitions:'
                " Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                {"preferredHolder": "b"},
                'Lease.coordination.k8s.io "peeringd" is invalid: spec.preferredHolder:'
                " Forbidden: may only be specified if `strategy` is defined",
            ),
        ],
    )
    def test_invalid_specs_are_refused(self, serve: Serve, spec: dict[str, Any], message: str) -> None:
        """The coordination API's own validation answers 422."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            coordination(api).create_namespaced_lease("kube-system", lease("peeringd", **spec))
        assert (error.value.status, status_of(error)["message"]) == (422, message)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            (
                {"leaseDurationSeconds": "15"},
                'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string'
                " into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32",
            ),
            (
                {"renewTime": "2026-01-02T03:04:05Z"},
                'Lease in version "v1" cannot be handled as a Lease: parsing time'
                ' "2026-01-02T03:04:05Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse'
                ' "2026-01-02T03:04:05Z"',
            ),
        ],
    )
    def test_undecodable_specs_are_bad_requests(
        self, serve: Serve, spec: dict[str, Any], message: str
    ) -> None:
        """A wrong JSON type, or a MicroTime without six fractional digits, answers 400."""
        _, api = serve()
        status, body = raw(
            api,
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
            lease("peeringd", **spec),
        )
        assert (status, body["message"]) == (400, message)

    def test_unknown_fields_are_dropped_with_a_warning(self, serve: Serve) -> None:
        """Like a pruned CRD field: dropped, and named in a Warning header."""
        server, api = serve()
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
        response = api.call_api(*api.param_serialize("POST", path, body=lease("peeringd", color="blue")))
        response.read()
        assert (response.status, response.getheader("Warning")) == (
            201,
            '299 - "unknown field \\"spec.color\\""',
        )
        stored = server.get(LEASES, "peeringd", "kube-system")
        assert stored is not None
        assert "color" not in stored["spec"]


class TestNamespaces:
    """Namespaces: where namespaced objects may be created, and what deleting one does."""

    def test_create_in_a_missing_namespace_is_not_found(self, serve: Serve) -> None:
        """The NamespaceLifecycle admission's 404 names the Namespace."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            coordination(api).create_namespaced_lease("nope", lease("peeringd", None))
        assert error.value.status == 404
        assert status_of(error)["message"] == 'namespaces "nope" not found'
        assert status_of(error)["details"] == {"name": "nope", "kind": "namespaces"}

    def test_a_body_naming_another_namespace_is_a_bad_request(self, serve: Serve) -> None:
        """The URL's namespace and the body's must agree; an empty one is filled in."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            coordination(api).create_namespaced_lease("default", lease("peeringd", "kube-system"))
        assert error.value.status == 400
        assert status_of(error)["message"] == (
            "the namespace of the provided object does not match the namespace sent on the request"
        )

    def test_a_new_namespace_is_active_with_the_kubernetes_finalizer(self, serve: Serve) -> None:
        """Status and finalizers are the server's, whatever the body says."""
        _, api = serve()
        created = core(api).create_namespace(
            {"metadata": {"name": "calico-system"}, "status": {"phase": "Terminating"}}
        )
        assert (created.status.phase, created.spec.finalizers) == ("Active", ["kubernetes"])

    def test_namespace_names_are_labels(self, serve: Serve) -> None:
        """A dotted name, fine for a Secret, is refused for a Namespace."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            core(api).create_namespace({"metadata": {"name": "a.b"}})
        assert error.value.status == 422
        assert status_of(error)["message"].startswith(
            'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label'
        )

    def test_deleting_a_namespace_deletes_its_objects(self, serve: Serve) -> None:
        """Its Secrets and Leases go with it (at once: the lab has no Terminating phase)."""
        server, api = serve()
        core(api).create_namespace({"metadata": {"name": "team"}})
        server.put(secret("s", "team"))
        server.put(lease("l", "team"))
        server.put(lease("l", "default"))
        core(api).delete_namespace("team")
        assert server.objects("secrets", "team") == []
        assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in server.objects(LEASES)] == [
            ("default", "l")
        ]
        with pytest.raises(client.ApiException) as error:
            coordination(api).create_namespaced_lease("team", lease("l", None))
        assert error.value.status == 404

    def test_immortal_namespaces_cannot_be_deleted(self, serve: Serve) -> None:
        """kube-system stays, with the lifecycle admission's 403."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            core(api).delete_namespace("kube-system")
        assert error.value.status == 403
        assert (
            status_of(error)["message"]
            == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'
        )


class TestSecrets:
    """Secrets: data in base64, stringData merged in, type and immutability kept."""

    def test_string_data_is_merged_into_data(self, serve: Serve) -> None:
        """stringData is write-only: encoded into data (over it), never stored; type defaults to Opaque."""
        _, api = serve()
        created = core(api).create_namespaced_secret(
            "default",
            secret("bgp", data={"a": base64.b64encode(b"old").decode()}, stringData={"a": "new", "b": "x"}),
        )
        assert created.type == "Opaque"
        assert created.string_data is None
        assert {key: base64.b64decode(value) for key, value in created.data.items()} == {
            "a": b"new",
            "b": b"x",
        }

    def test_data_must_be_base64(self, serve: Serve) -> None:
        """Go's decoder refuses it: 400, with the byte where it breaks."""
        _, api = serve()
        status, body = raw(
            api, "POST", "/api/v1/namespaces/default/secrets", secret("bgp", data={"a": "no good"})
        )
        assert (status, body["message"]) == (
            400,
            'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 2',
        )

    def test_keys_must_be_config_keys(self, serve: Serve) -> None:
        """A key with a space is a 422 naming data[key]."""
        _, api = serve()
        with pytest.raises(client.ApiException) as error:
            core(api).create_namespaced_secret("default", secret("bgp", stringData={"a b": "x"}))
        assert error.value.status == 422
        assert status_of(error)["details"]["causes"][0]["field"] == "data[a b]"

    def test_type_is_immutable(self, serve: Serve) -> None:
        """Changing a Secret's type is refused."""
        _, api = serve()
        core(api).create_namespaced_secret("default", secret("bgp", stringData={"a": "x"}))
        with pytest.raises(client.ApiException) as error:
            core(api).patch_namespaced_secret("bgp", "default", {"type": "kubernetes.io/tls"})
        assert error.value.status == 422
        assert status_of(error)["message"] == (
            'Secret "bgp" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable'
        )

    def test_an_immutable_secret_keeps_its_data(self, serve: Serve) -> None:
        """With immutable set, data may not change and immutable may not be unset."""
        _, api = serve()
        core(api).create_namespaced_secret("default", secret("bgp", stringData={"a": "x"}, immutable=True))
        with pytest.raises(client.ApiException) as error:
            core(api).patch_namespaced_secret("bgp", "default", {"stringData": {"a": "y"}})
        assert error.value.status == 422
        assert [c["field"] for c in status_of(error)["details"]["causes"]] == ["data"]


class TestRouting:
    """Which paths exist for namespaced kinds, and what the journal records of them."""

    def test_across_namespaces_only_collections_are_read(self, serve: Serve) -> None:
        """GET /api/v1/secrets/NAME does not exist; POST /api/v1/secrets is not allowed."""
        _, api = serve()
        missing = raw(api, "GET", "/api/v1/secrets/bgp")
        refused = raw(api, "POST", "/api/v1/secrets", secret("bgp"))
        assert (missing[0], missing[1]["message"]) == (
            404,
            "the server could not find the requested resource",
        )
        assert (refused[0], refused[1]["reason"]) == (405, "MethodNotAllowed")

    def test_cluster_scoped_kinds_have_no_namespaced_path(self, serve: Serve) -> None:
        """/api/v1/namespaces/default/nodes is not a path."""
        _, api = serve()
        assert raw(api, "GET", "/api/v1/namespaces/default/nodes")[0] == 404

    def test_the_journal_records_the_namespace_and_the_client(self, serve: Serve) -> None:
        """Each entry names the URL's namespace and the User-Agent that sent it."""
        server, api = serve()
        api.user_agent = "peeringd/test (host-a; pid 1)"
        coordination(api).create_namespaced_lease("kube-system", lease("peeringd"))
        coordination(api).list_lease_for_all_namespaces()
        entries = [(e.verb, e.resource, e.namespace, e.user_agent) for e in server.journal]
        assert entries == [
            ("create", "leases", "kube-system", "peeringd/test (host-a; pid 1)"),
            ("list", "leases", None, "peeringd/test (host-a; pid 1)"),
        ]

    def test_a_forbidden_request_names_the_namespace(self, serve: Serve) -> None:
        """RBAC's wording for a namespaced request ends "in the namespace ..."."""
        server, api = serve()
        server.inject_fault("get", "leases", status=403)
        with pytest.raises(client.ApiException) as error:
            coordination(api).read_namespaced_lease("peeringd", "kube-system")
        assert status_of(error)["message"].endswith(
            'cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"'
        )


class TestWatch:
    """Watches of a namespace see only it; across namespaces, all."""

    def test_a_namespace_watch_sees_only_its_namespace(self, serve: Serve) -> None:
        """Events in another namespace are not sent; the all-namespaces watch gets both."""
        server, api = serve()
        leases = coordination(api)
        since = leases.list_lease_for_all_namespaces().metadata.resource_version
        server.put(lease("other", "default"))
        server.put(lease("peeringd"))
        server.put(lease("peeringd", holderIdentity="b"))
        server.delete(LEASES, "peeringd", "kube-system")
        ours = watch.Watch().stream(
            leases.list_namespaced_lease, "kube-system", resource_version=since, timeout_seconds=5
        )
        everywhere = watch.Watch().stream(
            leases.list_lease_for_all_namespaces, resource_version=since, timeout_seconds=5
        )
        assert collect(ours, 3) == [("ADDED", "peeringd"), ("MODIFIED", "peeringd"), ("DELETED", "peeringd")]
        assert collect(everywhere, 4) == [
            ("ADDED", "other"),
            ("ADDED", "peeringd"),
            ("MODIFIED", "peeringd"),
            ("DELETED", "peeringd"),
        ]


class TestDirectAccess:
    """put/get/objects/delete of namespaced kinds without HTTP."""

    def test_round_trip(self) -> None:
        """The namespace comes from the object on put, and is named on get and delete."""
        server = KubeApiServer(calico_api="none")
        stored = server.put(lease("peeringd"))
        assert server.get(LEASES, "peeringd", "kube-system") == stored
        assert server.get(LEASES, "peeringd", "default") is None
        assert server.delete(LEASES, "peeringd", "kube-system")
        assert server.objects(LEASES) == []

    def test_a_namespaced_object_needs_its_namespace(self) -> None:
        """Without one, direct access is a programming error, not a request."""
        server = KubeApiServer(calico_api="none")
        with pytest.raises(ValueError, match="namespaced"):
            server.put(lease("peeringd", None))
        with pytest.raises(ValueError, match="namespaced"):
            server.get(LEASES, "peeringd")


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
"""


def test_namespaced_custom_resources(serve: Serve, tmp_path: Path) -> None:
    """A CRD of scope Namespaced is served under /namespaces/NS/ and discovered as namespaced."""
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "widget.yaml").write_text(CRD)
    _, api = serve(crds=crds)
    objects = client.CustomObjectsApi(api)
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1},
    }
    created: Any = objects.create_namespaced_custom_object("example.com", "v1", "default", "widgets", widget)
    assert created["metadata"]["namespace"] == "default"
    resources = objects.get_api_resources("example.com", "v1").resources
    assert [(r.name, r.namespaced) for r in resources] == [("widgets", True)]
    with pytest.raises(client.ApiException) as error:
        objects.get_namespaced_custom_object("example.com", "v1", "kube-system", "widgets", "w")
    assert status_of(error)["message"] == 'widgets.example.com "w" not found'
