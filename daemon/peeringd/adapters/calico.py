"""The Calico side, through the Kubernetes API with the official ``kubernetes`` client.

Observing costs four requests whatever the cluster's size: LIST Nodes (with the
file's label selector), LIST BGPPeers, GET BGPConfiguration ``default``, LIST
IPPools. Lists are read without the client's model deserialisation
(``_preload_content=False``), which is what keeps 5,000 Nodes cheap.

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

import functools
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import kubernetes.client
import kubernetes.watch
import ruamel.yaml
import structlog
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from peeringd.adapters import kubeclient
from peeringd.core import live, nodes, ownership
from peeringd.core.plan import Action, Change, ConfigurationChange, PeerChange
from peeringd.errors import (
    CalicoConflict,
    CalicoError,
    CalicoForbidden,
    CalicoInvalid,
    CalicoNotInstalled,
    CalicoUnavailable,
)

__all__ = ["API_GROUPS", "Calico", "rbac_manifest"]

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
# How often calico-node refreshes the statuses peeringd asks for: often enough for
# `peeringd status`, rarely enough to keep the load of many nodes modest.
STATUS_UPDATE_SECONDS = 10


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
        self._core = kubernetes.client.CoreV1Api(api)
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._group: str | None = None

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

    def observe(self, selector: str = "") -> live.CalicoSnapshot:
        """Calico's live state in four requests; Nodes are those ``selector`` selects."""
        group = self.api_group
        node_list, _ = self.list_nodes(selector)
        peers = self._list(BGP_PEERS)
        configuration = self._get_configuration()
        pools = self._list(IP_POOLS)
        return live.CalicoSnapshot(
            api_group=group,
            configuration=configuration,
            peers=tuple(_peer(item) for item in peers),
            nodes=node_list,
            pools=tuple(_pool(item) for item in pools),
        )

    def list_nodes(self, selector: str = "") -> tuple[tuple[live.Node, ...], str]:
        """The Nodes ``selector`` selects, and the list's resourceVersion to watch from."""
        document = self._call(
            "list",
            "nodes",
            lambda: self._raw(
                self._core.list_node(
                    label_selector=selector or None, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            ),
        )
        nodes = tuple(_node(item) for item in document["items"])
        return nodes, str(document["metadata"].get("resourceVersion", ""))

    def watch_nodes(
        self, selector: str, resource_version: str, *, timeout_seconds: int = 60
    ) -> Iterator[tuple[str, live.Node]]:
        """Changes to the selected Nodes after ``resource_version``: (ADDED|MODIFIED|DELETED, node).

        Ends when the server closes the watch (after ``timeout_seconds``); a too old
        resourceVersion raises CalicoConflict, meaning: list again.
        """
        stream = kubernetes.watch.Watch().stream(
            self._core.list_node,
            label_selector=selector or None,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            deserialize=False,
            _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + REQUEST_TIMEOUT[1]),
        )
        try:
            for event in stream:
                if event["type"] in {"ADDED", "MODIFIED", "DELETED"}:
                    yield event["type"], _node(event["object"])
        except ApiException as error:
            if error.status == 410:
                raise CalicoConflict(f"the node watch expired ({error.reason}); listing again") from None
            raise self._translate(error, "watch", "nodes", "") from None
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable(error) from None

    def node_statuses(self, nodes: tuple[str, ...], *, cluster: str) -> tuple[live.NodeStatus, ...]:
        """calico-node's BGP view of each of ``nodes``, from CalicoNodeStatus objects.

        peeringd owns one per node (named ``peeringd.<node>``): it creates those that are
        missing (their status stays empty until calico-node reports) and deletes its own
        for nodes no longer listed. One LIST when nothing changed.
        """
        wanted = set(nodes)
        found: dict[str, live.NodeStatus] = {}
        for item in self._list(NODE_STATUSES):
            metadata = item.get("metadata") or {}
            node = (item.get("spec") or {}).get("node", "")
            ours = ownership.owns(metadata.get("labels") or {}, metadata.get("annotations") or {}, cluster)
            if ours and node not in wanted:
                self._delete(NODE_STATUSES, metadata["name"])
            elif ours or node not in found:
                found[node] = _node_status(node, item)
        for node in sorted(wanted - set(found)):
            spec = {"node": node, "classes": ["BGP"], "updatePeriodSeconds": STATUS_UPDATE_SECONDS}
            self._create(NODE_STATUSES, f"peeringd.{node}"[:253], spec, _marks(cluster))
            found[node] = live.NodeStatus(node=node)
        return tuple(found[node] for node in sorted(wanted))

    def apply(self, changes: tuple[Change, ...], *, cluster: str, state_hash: str) -> Iterator[Change]:
        """Apply Calico's changes in order, yielding each once the API server accepted it.

        The first failure raises (a 409 as CalicoConflict) and stops the rest.
        """
        for change in changes:
            if isinstance(change, PeerChange):
                self._apply_peer(change, cluster, state_hash)
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
        spec = {"peerIP": change.after.peer_ip, "asNumber": change.after.as_number}
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
            "spec": {**spec, "node": None, "nodeSelector": None},
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

    def _delete(self, kind: _Kind, name: str, resource_version: str | None = None) -> None:
        """Delete ``name``; with ``resource_version``, only if nobody changed it since it was read."""
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
        self._call("delete", kind.plural, request, name)

    def _api_groups(self) -> Any:
        return kubernetes.client.ApisApi(self._api).get_api_versions(
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )

    def _list(self, kind: _Kind) -> list[dict[str, Any]]:
        group, version = self.api_group.split("/")
        document = self._call(
            "list",
            kind.plural,
            lambda: self._raw(
                self._custom.list_cluster_custom_object(
                    group, version, kind.plural, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
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
        message = _status_message(error)
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


def _status_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
    except ValueError:
        return str(error.reason or "")
    return str(body.get("message") or error.reason or "") if isinstance(body, dict) else str(body)


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
        labels=tuple(sorted((metadata.get("labels") or {}).items())),
        annotations=tuple(sorted((metadata.get("annotations") or {}).items())),
        resource_version=metadata.get("resourceVersion", ""),
    )


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


def _node_status(node: str, item: dict[str, Any]) -> live.NodeStatus:
    status = item.get("status") or {}
    peers = (status.get("bgp") or {}).get("peersV4") or []
    return live.NodeStatus(
        node=node,
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


def _pool(item: dict[str, Any]) -> live.IPPool:
    spec = item.get("spec") or {}
    return live.IPPool(
        name=item["metadata"]["name"],
        cidr=spec.get("cidr", ""),
        vxlan_mode=spec.get("vxlanMode"),
    )
