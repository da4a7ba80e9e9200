"""peeringd's BGP password Secret in calico-node's namespace, through the Kubernetes API.

calico-node reads a BGPPeer's password from a Secret in its own namespace
(``spec.password.secretKeyRef``), and needs a Role to read it (Calico's "Secure BGP
sessions" guide). peeringd keeps one Secret, ``peeringd-bgp-passwords``, with one key
per ADC, created, patched (with the resourceVersion read) and deleted by it alone.

The namespace is the file's ``cluster.calicoNamespace``, else ``calico-system``
when it exists (operator installs), else ``kube-system`` (manifest installs).
Whether calico-node may read the Secret is asked of the API server with a
SubjectAccessReview for calico-node's ServiceAccount, as the API server would
decide a real request.

Requests go through the client's ApiClient with the body unread, as for Nodes in
``calico``; errors become ``peeringd.errors`` types, worded without the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import kubernetes.client
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from peeringd.adapters import kubeclient
from peeringd.core import live, ownership, secret
from peeringd.core.plan import Action, SecretChange
from peeringd.errors import CalicoConflict, CalicoError, CalicoForbidden, CalicoUnavailable

__all__ = ["CALICO_NODE", "DEFAULT_NAMESPACES", "PasswordSecrets", "rbac_manifest"]

# Where calico-node runs: operator installs first, then manifest installs.
DEFAULT_NAMESPACES = ("calico-system", "kube-system")
# calico-node's ServiceAccount, in its namespace, in both kinds of install.
CALICO_NODE = "calico-node"
_TIMEOUT = (5.0, 30.0)


def rbac_manifest(namespace: str) -> str:
    """The Role and RoleBinding that let calico-node read peeringd's Secret, and let peeringd
    keep it, in ``namespace``, as YAML documents."""
    return f"""---
# calico-node reads the BGP passwords of peeringd's BGPPeers from this one Secret.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: peeringd-bgp-passwords-reader
  namespace: {namespace}
  labels: {{app.kubernetes.io/name: peeringd}}
rules:
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: [{secret.SECRET_NAME}]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: peeringd-bgp-passwords-reader
  namespace: {namespace}
  labels: {{app.kubernetes.io/name: peeringd}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: peeringd-bgp-passwords-reader
subjects:
  - kind: ServiceAccount
    name: {CALICO_NODE}
    namespace: {namespace}
---
# peeringd keeps that Secret (create cannot be limited to a name).
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: peeringd-bgp-passwords
  namespace: {namespace}
  labels: {{app.kubernetes.io/name: peeringd}}
rules:
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: [{secret.SECRET_NAME}]
    verbs: [get, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: peeringd-bgp-passwords
  namespace: {namespace}
  labels: {{app.kubernetes.io/name: peeringd}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: peeringd-bgp-passwords
subjects:
  - kind: ServiceAccount
    name: peeringd
    namespace: kube-system
"""


class PasswordSecrets:
    """peeringd's password Secret on one API server connection."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = api
        self._detected: str | None = None

    def namespace(self, configured: str | None) -> str:
        """``configured``, else the first of DEFAULT_NAMESPACES that exists (found once)."""
        if configured is not None:
            return configured
        if self._detected is None:
            found = self._request("GET", f"/api/v1/namespaces/{DEFAULT_NAMESPACES[0]}", missing_ok=True)
            self._detected = DEFAULT_NAMESPACES[0 if found is not None else 1]
        return self._detected

    def observe(self, configured_namespace: str | None) -> live.PasswordSecret:
        """The Secret (``exists`` False when there is none) and whether calico-node may read it."""
        namespace = self.namespace(configured_namespace)
        reader = f"system:serviceaccount:{namespace}:{CALICO_NODE}"
        readable = self._readable(namespace, reader)
        item = self._request("GET", self._path(namespace, secret.SECRET_NAME), missing_ok=True)
        if item is None:
            return live.PasswordSecret(
                namespace=namespace, name=secret.SECRET_NAME, readable=readable, reader=reader
            )
        metadata = item.get("metadata") or {}
        return live.PasswordSecret(
            namespace=namespace,
            name=secret.SECRET_NAME,
            exists=True,
            data=tuple(sorted((key, _decoded(value)) for key, value in (item.get("data") or {}).items())),
            labels=tuple(sorted((metadata.get("labels") or {}).items())),
            annotations=tuple(sorted((metadata.get("annotations") or {}).items())),
            resource_version=metadata.get("resourceVersion", ""),
            readable=readable,
            reader=reader,
        )

    def apply(self, change: SecretChange, cluster: str) -> None:
        """Create, patch (data and marks, with the resourceVersion read) or delete the Secret."""
        path = self._path(change.namespace, change.name)
        if change.action == Action.DELETE:
            precondition = {"preconditions": {"resourceVersion": change.resource_version}}
            self._request("DELETE", path, body=precondition)
            return
        after = dict(change.after or ())
        data: dict[str, str | None] = {key: _encoded(value) for key, value in after.items()}
        marks: dict[str, Any] = {
            "labels": {ownership.MANAGED_BY_LABEL: ownership.MANAGED_BY},
            "annotations": {ownership.CLUSTER_ANNOTATION: cluster},
        }
        if change.action == Action.CREATE:
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": change.name, "namespace": change.namespace, **marks},
                "type": "Opaque",
                "data": data,
            }
            self._request("POST", f"/api/v1/namespaces/{change.namespace}/secrets", body=body)
            return
        # A merge patch: null removes the key of an ADC that no longer has a password.
        data |= {key: None for key, _ in change.before or () if key not in after}
        patch = {"metadata": {"resourceVersion": change.resource_version, **marks}, "data": data}
        self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def _readable(self, namespace: str, reader: str) -> bool | None:
        """A SubjectAccessReview: may ``reader`` get the Secret? None when it cannot be asked."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": reader,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "get",
                    "resource": "secrets",
                    "name": secret.SECRET_NAME,
                },
            },
        }
        try:
            answer = self._request(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review, missing_ok=True
            )
        except CalicoForbidden:
            return None  # peeringd may not ask: the plan says that it could not check
        allowed = ((answer or {}).get("status") or {}).get("allowed")
        return allowed if isinstance(allowed, bool) else None

    @staticmethod
    def _path(namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/secrets/{name}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """The JSON answer to one request; None for a 404 when ``missing_ok``."""
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=_TIMEOUT)
            text = response.read()
        except urllib3.exceptions.HTTPError as error:
            reason = getattr(error, "reason", None) or error
            raise CalicoUnavailable(f"the API server did not answer: {reason}") from None
        if response.status == 404 and missing_ok:
            return None
        if not 200 <= response.status <= 299:
            raise _translate(method, path, ApiException(http_resp=response))
        answer = json.loads(text or b"{}")
        return answer if isinstance(answer, dict) else None


def _translate(method: str, path: str, error: ApiException) -> CalicoError:
    """An error answer as peeringd's error, naming the request (never a request body)."""
    status, message = error.status or 0, kubeclient.status_message(error)
    what = f"{method} {path}"
    if status in (401, 403):
        return CalicoForbidden(
            f"{what}: not allowed ({status}): {message}; apply the Roles `peeringd rbac` prints"
        )
    if status == 409:
        return CalicoConflict(f"{what}: changed since it was read ({message}); re-reading")
    if status == 429 or status >= 500:
        return CalicoUnavailable(f"{what}: the API server failed ({status}): {message}")
    return CalicoError(f"{what}: {status} {message}")


def _decoded(value: object) -> secret.Password:
    try:
        return secret.Password(base64.b64decode(str(value), validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError):
        # Not a password peeringd wrote: unknown, so it differs from the file's and is rewritten.
        return secret.Password(None)


def _encoded(value: secret.Password) -> str:
    return base64.b64encode(value.reveal().encode()).decode()
