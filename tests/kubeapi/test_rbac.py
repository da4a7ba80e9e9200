"""The lab's API server answers SubjectAccessReviews from the Roles and bindings it stores,
asked through the official kubernetes client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from peeringd.lab.kubeapi import KubeApiServer
from tests.kubeapi.test_kubeapi_server import api_client

CALICO_NODE = "system:serviceaccount:calico-system:calico-node"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[KubeApiServer, client.AuthorizationV1Api]]:
    with KubeApiServer(calico_api="none") as server:
        server.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "calico-system"}})
        yield server, client.AuthorizationV1Api(api_client(server, tmp_path))


def role(name: str, namespace: str | None, **rule: Any) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    kind = "Role" if namespace else "ClusterRole"
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata, "rules": [rule]}


def binding(name: str, namespace: str | None, role_kind: str, subject: dict[str, str]) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [subject],
    }


SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": "calico-node", "namespace": "calico-system"}
SECRET_READER = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["bgp"], "verbs": ["get"]}


def allowed(api: client.AuthorizationV1Api, name: str = "bgp", namespace: str = "calico-system") -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=CALICO_NODE,
            groups=["system:serviceaccounts", "system:serviceaccounts:calico-system"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb="get", resource="secrets", name=name
            ),
        )
    )
    status = api.create_subject_access_review(review).status
    assert status is not None
    return bool(status.allowed)


def test_nothing_bound_is_denied(served: tuple[KubeApiServer, client.AuthorizationV1Api]) -> None:
    assert allowed(served[1]) is False


def test_a_role_and_binding_allow_the_named_secret_only(
    served: tuple[KubeApiServer, client.AuthorizationV1Api],
) -> None:
    server, api = served
    server.put(role("reader", "calico-system", **SECRET_READER))
    server.put(binding("reader", "calico-system", "Role", SERVICE_ACCOUNT))

    assert [allowed(api), allowed(api, name="other"), allowed(api, namespace="kube-system")] == [
        True,
        False,
        False,
    ]


def test_a_binding_to_someone_else_allows_nothing(
    served: tuple[KubeApiServer, client.AuthorizationV1Api],
) -> None:
    server, api = served
    server.put(role("reader", "calico-system", **SECRET_READER))
    server.put(binding("reader", "calico-system", "Role", {**SERVICE_ACCOUNT, "name": "peeringd"}))

    assert allowed(api) is False


def test_a_cluster_role_bound_to_a_group_allows_everywhere(
    served: tuple[KubeApiServer, client.AuthorizationV1Api],
) -> None:
    server, api = served
    server.put(role("all-secrets", None, apiGroups=[""], resources=["*"], verbs=["*"]))
    server.put(
        binding("all-secrets", None, "ClusterRole", {"kind": "Group", "name": "system:serviceaccounts"})
    )

    assert [allowed(api), allowed(api, name="other", namespace="kube-system")] == [True, True]
