"""The Calico side, through the Kubernetes API with the official ``kubernetes`` client.

Observing costs four requests whatever the cluster's size: LIST Nodes (with the
file's label selector), LIST BGPPeers, GET BGPConfiguration ``default``, LIST
IPPools; three when the caller keeps the Nodes current with a watch
(``watch_nodes``) and passes them in. Lists and watch events are read without
the client's model deserialisation (``_preload_content=False``), which is what
keeps 5,000 Nodes cheap.

Writes touch only what peeringd owns: its BGPPeers (created whole, updated by a
merge patch carrying the resourceVersion read, deleted with a resourceVersion
precondition) and the two fields of BGPConfiguration ``default`` the file
names. Adopting a hand-made BGPPeer, or releasing one, is a merge patch of its
label and annotations alone, also carrying the resourceVersion read. A 409
means someone else wrote in between: it is raised as ``CalicoConflict`` so the
pass re-reads and re-plans instead of overwriting.
Every client or transport exception becomes a ``peeringd.errors`` type here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import kubernetes.client
import kubernetes.watch.watch
import ruamel.yaml
import structlog
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from peeringd.adapters import kubeclient, password_secret
from peeringd.core import live, nodes, ownership, secret
from peeringd.core.plan import Action, Change, ConfigurationChange, PeerChange, SecretChange
from peeringd.errors import (
    CalicoConflict,
    CalicoError,
    CalicoForbidden,
    CalicoInvalid,
    CalicoNotInstalled,
    CalicoUnavailable,
)

__all__ = ["API_GROUPS", "Calico", "NodeEvent", "rbac_manifest"]

# Preferred first: the v3 API validates and defaults server-side.
API_GROUPS = ("projectcalico.org/v3", "crd.projectcalico.org/v1")
CONFIGURATION_NAME = "default"
# (connect, read) seconds for every request: a hung API server must not hang a pass.
REQUEST_TIMEOUT = (5.0, 30.0)

_T = TypeVar("_T")

log = structlog.get_logger("peeringd")


@dataclass(frozen=True)
class _Kind:
    plural: str
    kind: str


BGP_PEERS = _Kind("bgppeers", "BGPPeer")
BGP_CONFIGURATIONS = _Kind("bgpconfigurations", "BGPConfiguration")
IP_POOLS = _Kind("ippools", "IPPool")
NODE_STATUSES = _Kind("caliconodestatuses", "CalicoNodeStatus")
# When peeringd may remove a CalicoNodeStatus it created (RFC 3339, UTC).
EXPIRES_ANNOTATION = "peeringd.io/expires-at"


@dataclass(frozen=True)
class NodeEvent:
    """One event of a node watch: a selected Node added, changed or deleted (or leaving the
    selector), or a bookmark, which only moves the resourceVersion on."""

    kind: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    node: live.Node | None
    resource_version: str


def rbac_manifest(lease_namespace: str = "kube-system", lease_name: str = "peeringd") -> str:
    """The least-privilege ServiceAccount, ClusterRole and leader-election Role (in the
    Lease's namespace, for that Lease only), with their bindings, as YAML."""
    text = resources.files("peeringd.adapters").joinpath("rbac.yaml").read_text()
    if (lease_namespace, lease_name) == ("kube-system", "peeringd"):
        return text
    yaml = ruamel.yaml.YAML()  # round trip: the comments say why each rule is there
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    documents = list(yaml.load_all(text))
    for document in documents:
        if document["metadata"]["name"] == "peeringd-leader":
            document["metadata"]["namespace"] = lease_namespace
            for rule in document.get("rules", ()):
                if "resourceNames" in rule:
                    rule["resourceNames"][:] = [lease_name]
    stream = io.StringIO()
    yaml.dump_all(documents, stream)
    return stream.getvalue()


class Calico:
    """One connection to a cluster's API server, and Calico's objects through it."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = api
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._group: str | None = None
        self._passwords = password_secret.PasswordSecrets(api)

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, context: str | None = None) -> Calico:
        """Connect as kubectl would (see ``kubeclient.connect``)."""
        return cls(kubeclient.connect(kubeconfig, context))

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Calico:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    @property
    def api_group(self) -> str:
        """``group/version`` of Calico's API, found once per connection by discovery."""
        if self._group is None:
            groups = self._call("get", "API groups", lambda: self._raw(self._api_groups()))
            served = {version["groupVersion"] for group in groups["groups"] for version in group["versions"]}
            self._group = next((group for group in API_GROUPS if group in served), None)
            if self._group is None:
                raise CalicoNotInstalled(
                    f"{self.server} serves neither {' nor '.join(API_GROUPS)}: is Calico installed?"
                )
            log.info("calico api found", server=self.server, api_group=self._group)
        return self._group

    def observe(
        self,
        selector: str = "",
        nodes: tuple[live.Node, ...] | None = None,
        *,
        passwords: bool = False,
        password_namespace: str | None = None,
    ) -> live.CalicoSnapshot:
        """Calico's live state in four requests; Nodes are those ``selector`` selects, or
        ``nodes`` when the caller keeps them current itself (then three requests).

        The BGP password Secret (two requests more) is read when ``passwords`` are wanted, or
        when a BGPPeer still refers to it (to remove it once none is wanted).
        """
        group = self.api_group
        if nodes is None:
            nodes, _ = self.list_nodes(selector)
        peers = tuple(_peer(item) for item in self._list(BGP_PEERS))
        configuration = self._get_configuration()
        pools = self._list(IP_POOLS)
        referred = any(
            peer.password is not None and peer.password.name == secret.SECRET_NAME for peer in peers
        )
        return live.CalicoSnapshot(
            api_group=group,
            configuration=configuration,
            peers=peers,
            nodes=nodes,
            pools=tuple(_pool(item) for item in pools),
            passwords=self._passwords.observe(password_namespace) if passwords or referred else None,
        )

    def list_nodes(self, selector: str = "", *, page: int | None = None) -> tuple[tuple[live.Node, ...], str]:
        """The Nodes ``selector`` selects, and the list's resourceVersion to watch from.

        With ``page``, in pages of that many Nodes (one consistent list, as client-go's
        informers read it): a long-lived process then never holds the whole list's JSON at
        once, whose peak it would otherwise keep as its size.
        """
        base = [("labelSelector", selector)] if selector else []
        nodes: list[live.Node] = []
        token = ""
        while True:
            query = base + ([("limit", str(page))] if page else []) + ([("continue", token)] if token else [])
            document = self._call("list", "nodes", functools.partial(self._node_page, query))
            nodes += (_node(item) for item in document["items"])
            metadata = document["metadata"]
            token = metadata.get("continue") or ""
            if not token:
                return tuple(nodes), str(metadata.get("resourceVersion", ""))

    def watch_nodes(
        self, selector: str, resource_version: str, *, timeout_seconds: int = 300
    ) -> Iterator[NodeEvent]:
        """Changes to the selected Nodes after ``resource_version``, with bookmarks.

        The watch is open when this returns (it raises otherwise); iterating reads its events
        until the server ends it, after ``timeout_seconds``. A resourceVersion too old for the
        server raises CalicoConflict while iterating, meaning: list again.
        """
        query = [("labelSelector", selector)] if selector else []
        query += [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        # A silent connection longer than the watch itself is a dead one.
        timeout = (REQUEST_TIMEOUT[0], timeout_seconds + REQUEST_TIMEOUT[1])
        response = self._call("watch", "nodes", lambda: self._get_nodes(query, timeout))
        return self._node_events(response)

    def _node_page(self, query: list[tuple[str, str]]) -> Any:
        return self._raw(self._get_nodes(query, REQUEST_TIMEOUT))

    def _get_nodes(self, query: list[tuple[str, str]], timeout: tuple[float, float]) -> Any:
        """GET /api/v1/nodes through the client's ApiClient, the body unread. CoreV1Api would
        import its 250 model classes (20 MB of a daemon's memory) for JSON read as it is."""
        request = self._api.param_serialize(
            method="GET",
            resource_path="/api/v1/nodes",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def _node_events(self, response: Any) -> Iterator[NodeEvent]:
        try:
            for line in kubernetes.watch.watch.iter_resp_lines(response):
                event = json.loads(line)
                kind, item = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise self._watch_error(item)
                version = str((item.get("metadata") or {}).get("resourceVersion", ""))
                if kind == "BOOKMARK":
                    yield NodeEvent("BOOKMARK", None, version)
                elif kind in {"ADDED", "MODIFIED", "DELETED"}:
                    yield NodeEvent(kind, _node(item), version)
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable(error) from None
        finally:
            response.release_conn()

    def _watch_error(self, status: dict[str, Any]) -> CalicoError:
        code, message = status.get("code"), status.get("message", "")
        if code == 410:
            return CalicoConflict(f"the node watch expired ({message}); listing again")
        if code == 429 or (isinstance(code, int) and code >= 500):
            return CalicoUnavailable(f"the node watch failed ({code}): {message}")
        return CalicoError(f"the node watch failed ({code}): {message}")

    def node_statuses(self, *, cluster: str, only_ours: bool = False) -> tuple[live.NodeStatus, ...]:
        """Every CalicoNodeStatus, those peeringd made for ``cluster`` marked as owned, in one
        LIST; with ``only_ours``, a LIST of peeringd's only (usually empty, so cheap)."""
        selector = f"{ownership.MANAGED_BY_LABEL}={ownership.MANAGED_BY}" if only_ours else None
        statuses = (_node_status(item, cluster) for item in self._list(NODE_STATUSES, selector))
        return tuple(status for status in statuses if status.owned or not only_ours)

    def create_node_status(self, node: str, *, cluster: str, period: int, expires: datetime) -> str:
        """Ask calico-node on ``node`` for its BGP status every ``period`` seconds, until
        peeringd removes the object after ``expires``; returns the object's name."""
        name = f"peeringd.{node}"[:253]
        metadata = _marks(cluster)
        metadata["annotations"][EXPIRES_ANNOTATION] = _timestamp(expires)
        spec = {"node": node, "classes": ["BGP"], "updatePeriodSeconds": period}
        with contextlib.suppress(CalicoConflict):  # a `status` running beside this one made it
            self._create(NODE_STATUSES, name, spec, metadata)
        return name

    def extend_node_status(self, name: str, expires: datetime) -> None:
        annotations = {EXPIRES_ANNOTATION: _timestamp(expires)}
        self._patch(NODE_STATUSES, name, {"metadata": {"annotations": annotations}})

    def delete_node_status(self, name: str) -> None:
        """Delete one of peeringd's CalicoNodeStatus objects; one already gone is fine."""
        self._delete(NODE_STATUSES, name, missing_ok=True)

    def apply(self, changes: tuple[Change, ...], *, cluster: str, state_hash: str) -> Iterator[Change]:
        """Apply Calico's changes in order, yielding each once the API server accepted it.

        The first failure raises (a 409 as CalicoConflict) and stops the rest.
        """
        for change in changes:
            if isinstance(change, PeerChange):
                self._apply_peer(change, cluster, state_hash)
            elif isinstance(change, SecretChange):
                self._passwords.apply(change, cluster)
            elif isinstance(change, ConfigurationChange):
                self._apply_configuration(change)
            else:
                raise TypeError(f"not a Calico change: {change!r}")
            yield change

    def _apply_peer(self, change: PeerChange, cluster: str, state_hash: str) -> None:
        if change.action == Action.DELETE:
            self._delete(BGP_PEERS, change.name, change.resource_version)
            return
        if change.action == Action.RELEASE:
            # A merge patch's null removes a key: the marks go, the object and its spec stay.
            unmarked = {
                "resourceVersion": change.resource_version,
                "labels": {ownership.MANAGED_BY_LABEL: None},
                "annotations": dict.fromkeys(_ANNOTATIONS),
            }
            self._patch(BGP_PEERS, change.name, {"metadata": unmarked})
            return
        assert change.after is not None
        spec: dict[str, Any] = {"peerIP": change.after.peer_ip, "asNumber": change.after.as_number}
        if (ref := change.after.password) is not None:
            spec["password"] = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        marks = _marks(cluster, state_hash, change.adc)
        if change.action == Action.CREATE:
            self._create(BGP_PEERS, change.name, spec, marks)
            return
        if change.action == Action.ADOPT:
            # Only the marks: the peer already is what the file wants, and keeps its name.
            self._patch(
                BGP_PEERS, change.name, {"metadata": {"resourceVersion": change.resource_version, **marks}}
            )
            return
        # A merge patch: null removes node and nodeSelector (a global peer has neither);
        # the resourceVersion turns a concurrent write into a 409.
        patch = {
            "metadata": {"resourceVersion": change.resource_version, "annotations": marks["annotations"]},
            "spec": {"password": None, **spec, "node": None, "nodeSelector": None},
        }
        self._patch(BGP_PEERS, change.name, patch)

    def _apply_configuration(self, change: ConfigurationChange) -> None:
        spec = {
            key: value
            for key, value in (
                ("asNumber", change.after.as_number),
                ("nodeToNodeMeshEnabled", change.after.node_to_node_mesh),
            )
            if value is not None
        }
        if change.action == Action.CREATE:
            self._create(BGP_CONFIGURATIONS, CONFIGURATION_NAME, spec, {})
        else:
            patch = {"metadata": {"resourceVersion": change.resource_version}, "spec": spec}
            self._patch(BGP_CONFIGURATIONS, CONFIGURATION_NAME, patch)

    def _create(self, kind: _Kind, name: str, spec: dict[str, Any], metadata: dict[str, Any]) -> None:
        group, version = self.api_group.split("/")
        body = {
            "apiVersion": self.api_group,
            "kind": kind.kind,
            "metadata": {"name": name, **metadata},
            "spec": spec,
        }
        create = functools.partial(
            self._custom.create_cluster_custom_object,
            group,
            version,
            kind.plural,
            body,
            _request_timeout=REQUEST_TIMEOUT,
        )
        self._call("create", kind.plural, create, name)

    def _patch(self, kind: _Kind, name: str, patch: dict[str, Any]) -> None:
        group, version = self.api_group.split("/")
        request = functools.partial(
            self._custom.patch_cluster_custom_object,
            group,
            version,
            kind.plural,
            name,
            patch,
            _request_timeout=REQUEST_TIMEOUT,
        )
        self._call("patch", kind.plural, request, name)

    def _delete(
        self, kind: _Kind, name: str, resource_version: str | None = None, *, missing_ok: bool = False
    ) -> None:
        """Delete ``name``; with ``resource_version``, only if nobody changed it since it was read;
        with ``missing_ok``, an object already gone is not an error."""
        group, version = self.api_group.split("/")
        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(resource_version=resource_version)
            if resource_version
            else None
        )
        request = functools.partial(
            self._custom.delete_cluster_custom_object,
            group,
            version,
            kind.plural,
            name,
            body=options,
            _request_timeout=REQUEST_TIMEOUT,
        )
        try:
            request()
        except ApiException as error:
            if missing_ok and error.status == 404:
                return
            raise self._translate(error, "delete", kind.plural, name) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable(error) from None

    def _api_groups(self) -> Any:
        return kubernetes.client.ApisApi(self._api).get_api_versions(
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )

    def _list(self, kind: _Kind, selector: str | None = None) -> list[dict[str, Any]]:
        group, version = self.api_group.split("/")
        document = self._call(
            "list",
            kind.plural,
            lambda: self._raw(
                self._custom.list_cluster_custom_object(
                    group,
                    version,
                    kind.plural,
                    label_selector=selector,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            ),
        )
        items: list[dict[str, Any]] = document["items"]
        return items

    def _get_configuration(self) -> live.BGPConfiguration | None:
        group, version = self.api_group.split("/")
        try:
            document = self._raw(
                self._custom.get_cluster_custom_object(
                    group,
                    version,
                    BGP_CONFIGURATIONS.plural,
                    CONFIGURATION_NAME,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            )
        except ApiException as error:
            if error.status == 404 and _is_object_not_found(error):
                return None
            raise self._translate(error, "get", BGP_CONFIGURATIONS.plural, CONFIGURATION_NAME) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable(error) from None
        spec = document.get("spec") or {}
        return live.BGPConfiguration(
            as_number=spec.get("asNumber"),
            node_to_node_mesh=spec.get("nodeToNodeMeshEnabled"),
            resource_version=document["metadata"].get("resourceVersion", ""),
        )

    @staticmethod
    def _raw(response: Any) -> Any:
        return json.loads(response.data)

    def _call(self, verb: str, plural: str, request: Callable[[], _T], name: str = "") -> _T:
        try:
            return request()
        except ApiException as error:
            raise self._translate(error, verb, plural, name) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable(error) from None

    def _unavailable(self, error: Exception) -> CalicoUnavailable:
        reason = getattr(error, "reason", None) or error
        return CalicoUnavailable(f"the API server {self.server} did not answer: {reason}")

    def _translate(self, error: ApiException, verb: str, plural: str, name: str) -> CalicoError:
        status = error.status or 0
        message = kubeclient.status_message(error)
        group = "" if plural in {"nodes", "API groups"} else (self._group or "").split("/")[0]
        target = f"{plural}.{group}" if group else plural
        subject = f"{target} {name}" if name else target
        if status == 401:
            return CalicoForbidden(f"the API server {self.server} refused the credentials (401): {message}")
        if status == 403:
            return CalicoForbidden(
                f'not allowed to {verb} {target}: add the rule {{apiGroups: ["{group}"], '
                f'resources: ["{plural}"], verbs: ["{verb}"]}} to the daemon\'s ClusterRole '
                "(`peeringd rbac` prints the whole role)"
            )
        if status == 404 and not name:
            return CalicoNotInstalled(f"{target} is not served by {self.server}: is Calico installed?")
        if status == 409:
            return CalicoConflict(f"{verb} {subject}: changed since it was read ({message}); re-reading")
        if status == 422:
            return CalicoInvalid(f"{verb} {subject}: the API server refused it: {message}")
        if status == 429 or status >= 500:
            return CalicoUnavailable(f"{verb} {subject}: the API server failed ({status}): {message}")
        return CalicoError(f"{verb} {subject}: {status} {message}")


def _is_object_not_found(error: ApiException) -> bool:
    """A 404 for a missing object names it; a 404 for a missing resource does not."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        return False
    return isinstance(body, dict) and bool((body.get("details") or {}).get("name"))


def _node(item: dict[str, Any]) -> live.Node:
    metadata = item.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    addresses = (item.get("status") or {}).get("addresses") or []
    return live.Node(
        name=metadata["name"],
        ipv4_address_annotation=annotations.get(nodes.IPV4_ADDRESS_ANNOTATION),
        as_number_annotation=annotations.get(nodes.AS_NUMBER_ANNOTATION),
        internal_ips=tuple(a["address"] for a in addresses if a.get("type") == "InternalIP"),
    )


def _peer(item: dict[str, Any]) -> live.BGPPeer:
    metadata = item.get("metadata") or {}
    spec = item.get("spec") or {}
    return live.BGPPeer(
        name=metadata["name"],
        peer_ip=spec.get("peerIP", ""),
        as_number=spec.get("asNumber"),
        node=spec.get("node"),
        node_selector=spec.get("nodeSelector"),
        password=_secret_key_ref(spec.get("password")),
        labels=tuple(sorted((metadata.get("labels") or {}).items())),
        annotations=tuple(sorted((metadata.get("annotations") or {}).items())),
        resource_version=metadata.get("resourceVersion", ""),
    )


def _secret_key_ref(password: object) -> live.SecretKeyRef | None:
    ref = password.get("secretKeyRef") if isinstance(password, dict) else None
    if not isinstance(ref, dict):
        return None
    return live.SecretKeyRef(name=str(ref.get("name", "")), key=str(ref.get("key", "")))


# Every annotation peeringd writes; a release removes them all.
_ANNOTATIONS = (ownership.CLUSTER_ANNOTATION, ownership.STATE_HASH_ANNOTATION, ownership.ADC_ANNOTATION)


def _marks(cluster: str, state_hash: str | None = None, adc: str | None = None) -> dict[str, Any]:
    """The label and annotations that make an object peeringd's, for this cluster (and, on a
    BGPPeer whose name is not its ADC's, as an adopted peer's, the ADC it stands for)."""
    annotations = {ownership.CLUSTER_ANNOTATION: cluster}
    if state_hash is not None:
        annotations[ownership.STATE_HASH_ANNOTATION] = state_hash
    if adc is not None:
        annotations[ownership.ADC_ANNOTATION] = adc
    return {"labels": {ownership.MANAGED_BY_LABEL: ownership.MANAGED_BY}, "annotations": annotations}


def _node_status(item: dict[str, Any], cluster: str) -> live.NodeStatus:
    metadata = item.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    status = item.get("status") or {}
    peers = (status.get("bgp") or {}).get("peersV4") or []
    return live.NodeStatus(
        node=(item.get("spec") or {}).get("node", ""),
        name=metadata.get("name", ""),
        # calico-node stamps lastUpdated on every report; the BGP section is its content.
        reported=bool(status.get("lastUpdated") or status.get("bgp")),
        owned=ownership.owns(metadata.get("labels") or {}, annotations, cluster),
        expires_at=_parse_timestamp(annotations.get(EXPIRES_ANNOTATION)),
        peers=tuple(
            live.PeerStatus(
                peer_ip=peer.get("peerIP", ""),
                type=peer.get("type", ""),
                state=peer.get("state", ""),
                since=peer.get("since"),
            )
            for peer in peers
        ),
    )


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(text: str | None) -> datetime | None:
    """An RFC 3339 time; None when absent or not understood (treated as made by an earlier
    peeringd, so removed)."""
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _pool(item: dict[str, Any]) -> live.IPPool:
    spec = item.get("spec") or {}
    return live.IPPool(
        name=item["metadata"]["name"],
        cidr=spec.get("cidr", ""),
        vxlan_mode=spec.get("vxlanMode"),
    )
