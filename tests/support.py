"""Shared test helpers: builders of states and snapshots, and the effect of a plan on a snapshot."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from peeringd.core import desired, live, ownership, secret
from peeringd.core.plan import (
    Action,
    ConfigurationChange,
    FeatureChange,
    MaxPathsChange,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    Plan,
    RouteInstallChange,
    RouterChange,
    SaveChange,
    SecretChange,
)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CLUSTER = "prod-1"


def state(*adcs: dict[str, Any], **overrides: Any) -> desired.PeeringState:
    """A valid desired state; ``overrides`` replace top-level sections."""
    document: dict[str, Any] = {
        "apiVersion": "peeringd/v1",
        "kind": "PeeringState",
        "cluster": {"name": CLUSTER, "podCIDR": "192.168.0.0/16", "asNumber": 64512},
        "adcs": list(adcs) if adcs else [adc()],
        **overrides,
    }
    return desired.PeeringState.model_validate(document)


def adc(
    name: str = "adc-1", peer_ip: str = "10.0.0.100", as_number: int = 500, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "asNumber": as_number,
        "peerIP": peer_ip,
        "ssh": {"host": peer_ip, "username": "nsroot", "passwordFile": "/nonexistent/password"},
        **extra,
    }


def with_passwords(state: desired.PeeringState, values: dict[str, str]) -> desired.PeeringState:
    """``state`` with BGP passwords by ADC name, as the loader reads them from their files."""
    adcs = []
    for adc in state.adcs:
        value = values.get(adc.name)
        setting = adc.bgp_password or desired.BgpPassword(file=Path(f"/etc/peeringd/{adc.name}.bgp"))
        if value is not None:
            password = setting.model_copy(update={"value": secret.Password(value)})
            adcs.append(adc.model_copy(update={"bgp_password": password}))
        else:
            adcs.append(adc)
    return state.model_copy(update={"adcs": tuple(adcs)})


def password_secret(
    values: dict[str, str] | None = None, *, readable: bool | None = True, cluster: str = CLUSTER
) -> live.PasswordSecret:
    """peeringd's password Secret as observed, holding ``values`` by ADC name (absent when None)."""
    return live.PasswordSecret(
        namespace="calico-system",
        name=secret.SECRET_NAME,
        exists=values is not None,
        data=tuple(sorted((name, secret.Password(value)) for name, value in (values or {}).items())),
        labels=((ownership.MANAGED_BY_LABEL, ownership.MANAGED_BY),),
        annotations=((ownership.CLUSTER_ANNOTATION, cluster),),
        resource_version="3" if values is not None else "",
        readable=readable,
        reader="system:serviceaccount:calico-system:calico-node",
    )


def node(name: str, address: str | None, as_number: str | None = None) -> live.Node:
    return live.Node(
        name=name,
        ipv4_address_annotation=f"{address}/24" if address else None,
        as_number_annotation=as_number,
    )


def calico(*nodes: live.Node, peers: tuple[live.BGPPeer, ...] = (), **fields: Any) -> live.CalicoSnapshot:
    return live.CalicoSnapshot(
        api_group="crd.projectcalico.org/v1",
        nodes=nodes,
        peers=peers,
        pools=(live.IPPool(name="default-ipv4-ippool", cidr="192.168.0.0/16"),),
        **fields,
    )


def owned_peer(name: str, peer_ip: str, as_number: int, cluster: str = CLUSTER) -> live.BGPPeer:
    return live.BGPPeer(
        name=name,
        peer_ip=peer_ip,
        as_number=as_number,
        labels=((ownership.MANAGED_BY_LABEL, ownership.MANAGED_BY),),
        annotations=((ownership.CLUSTER_ANNOTATION, cluster),),
        resource_version="7",
    )


def device(name: str = "adc-1", **fields: Any) -> live.AdcSnapshot:
    return live.AdcSnapshot(name=name, **{"bgp_feature": True, **fields})


def neighbour(address: str, remote_as: int = 64512, node_name: str | None = None) -> live.Neighbour:
    """A neighbour; owned by CLUSTER when ``node_name`` is given."""
    return live.Neighbour(
        address=ipaddress.IPv4Address(address),
        remote_as=remote_as,
        description=ownership.description(CLUSTER, node_name) if node_name else None,
    )


def neighbour_spec(password: secret.Password | None = None, node_name: str = "node-1") -> NeighbourSpec:
    return NeighbourSpec(
        remote_as=64512, description=ownership.description(CLUSTER, node_name), password=password
    )


def apply(planned: Plan, observed: live.LiveState, cluster: str = CLUSTER) -> live.LiveState:
    """The live state after every change of ``planned`` took effect, as each change's contract says."""
    result = observed
    for change in planned.changes:
        result = _apply_one(change, result, cluster)
    return result


def _apply_one(change: Any, observed: live.LiveState, cluster: str) -> live.LiveState:
    if isinstance(change, PeerChange | ConfigurationChange | SecretChange):
        assert observed.calico is not None
        return observed.model_copy(update={"calico": _apply_calico(change, observed.calico, cluster)})
    adcs = tuple(
        _apply_device(change, snapshot) if snapshot.name == change.target else snapshot
        for snapshot in observed.adcs
    )
    return observed.model_copy(update={"adcs": adcs})


def _apply_calico(change: Any, snapshot: live.CalicoSnapshot, cluster: str) -> live.CalicoSnapshot:
    if isinstance(change, SecretChange):
        assert snapshot.passwords is not None
        stored = snapshot.passwords.model_copy(
            update={"exists": change.after is not None, "data": change.after or ()}
        )
        return snapshot.model_copy(update={"passwords": stored})
    if isinstance(change, ConfigurationChange):
        current = snapshot.configuration or live.BGPConfiguration()
        fields = change.after.model_dump(exclude_none=True)
        return snapshot.model_copy(update={"configuration": current.model_copy(update=fields)})
    peers = [peer for peer in snapshot.peers if peer.name != change.name]
    if change.action != Action.DELETE:
        existing = next((p for p in snapshot.peers if p.name == change.name), None)
        written = owned_peer(change.name, change.after.peer_ip, change.after.as_number, cluster)
        written = written.model_copy(update={"password": change.after.password})
        if existing is not None:
            written = existing.model_copy(update=dict(change.after))
        if change.action in (Action.ADOPT, Action.RELEASE):
            written = _marked(written, cluster, change.for_adc if change.action == Action.ADOPT else None)
        peers.append(written)
    return snapshot.model_copy(update={"peers": tuple(peers)})


def _marked(peer: live.BGPPeer, cluster: str, adc: str | None) -> live.BGPPeer:
    """``peer`` with peeringd's marks for ``adc`` (as the Calico adapter writes them), or none."""
    marks = {ownership.MANAGED_BY_LABEL, ownership.CLUSTER_ANNOTATION, ownership.ADC_ANNOTATION}
    marks.add(ownership.STATE_HASH_ANNOTATION)
    labels = {k: v for k, v in peer.labels if k not in marks}
    annotations = {k: v for k, v in peer.annotations if k not in marks}
    if adc is not None:
        labels[ownership.MANAGED_BY_LABEL] = ownership.MANAGED_BY
        annotations |= {ownership.CLUSTER_ANNOTATION: cluster, ownership.ADC_ANNOTATION: adc}
    return peer.model_copy(
        update={"labels": tuple(sorted(labels.items())), "annotations": tuple(sorted(annotations.items()))}
    )


def _apply_device(change: Any, snapshot: live.AdcSnapshot) -> live.AdcSnapshot:
    if isinstance(change, SaveChange):
        return snapshot.model_copy(update={"unsaved": False})
    return _change_device(change, snapshot).model_copy(update={"unsaved": True})


def _change_device(change: Any, snapshot: live.AdcSnapshot) -> live.AdcSnapshot:
    match change:
        case FeatureChange():
            return snapshot.model_copy(update={"bgp_feature": change.after})
        case RouterChange():
            return snapshot.model_copy(update={"router_as": change.after, "neighbours": ()})
        case MaxPathsChange():
            return snapshot.model_copy(update={"max_paths": change.after})
        case RouteInstallChange():
            return snapshot.model_copy(update={"route_install": change.after})
        case NeighbourChange():
            # A changed neighbour stays where it was in the running config; a new one comes last.
            neighbours = [n for n in snapshot.neighbours if n.address != change.address]
            if change.after is not None:
                at = next(
                    (i for i, n in enumerate(snapshot.neighbours) if n.address == change.address),
                    len(neighbours),
                )
                neighbours.insert(
                    at,
                    live.Neighbour(
                        address=change.address,
                        remote_as=change.after.remote_as,
                        description=change.after.description,
                        password=change.after.password,
                    ),
                )
            return snapshot.model_copy(update={"neighbours": tuple(neighbours)})
    raise AssertionError(f"unknown change {change!r}")
