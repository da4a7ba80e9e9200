"""What peeringd may change: only objects that carry its marks.

Calico BGPPeers are ours when they carry the managed-by label AND the cluster
annotation of this cluster; ADC neighbours are ours when their description
starts with ``peeringd:<cluster>:``. Copied labels alone never make an object
ours, and two clusters sharing an ADC never touch each other's neighbours.

A BGPPeer stands for the ADC named in its ``peeringd.io/adc`` annotation, else
for the ADC it is named after: an adopted peer keeps the name it was made with.
"""

from __future__ import annotations

from collections.abc import Mapping

from peeringd.core import live

__all__ = [
    "ADC_ANNOTATION",
    "CLUSTER_ANNOTATION",
    "DESCRIPTION_LIMIT",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "STATE_HASH_ANNOTATION",
    "claimant",
    "description",
    "owns",
    "owns_neighbour",
    "owns_peer",
    "peer_adc",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "peeringd"
CLUSTER_ANNOTATION = "peeringd.io/cluster"
STATE_HASH_ANNOTATION = "peeringd.io/state-hash"
# The ADC a BGPPeer stands for, when its name is not the ADC's (an adopted peer).
ADC_ANNOTATION = "peeringd.io/adc"
# ZebOS and Quagga keep at most 80 characters of a neighbour description.
DESCRIPTION_LIMIT = 80


def owns(labels: Mapping[str, str], annotations: Mapping[str, str], cluster: str) -> bool:
    """Whether a Kubernetes object with these labels and annotations is this cluster's peeringd's."""
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and annotations.get(CLUSTER_ANNOTATION) == cluster


def owns_peer(peer: live.BGPPeer, cluster: str) -> bool:
    return owns(dict(peer.labels), dict(peer.annotations), cluster)


def claimant(peer: live.BGPPeer) -> str | None:
    """Who else claims a peer that is not ours, or None when nobody does.

    A claimed peer is never adopted: another peeringd owns it, another tool
    (``app.kubernetes.io/managed-by: Helm``) would take it back, or someone copied
    part of our marks by hand and the object's owner is unclear.
    """
    labels, annotations = dict(peer.labels), dict(peer.annotations)
    manager = labels.get(MANAGED_BY_LABEL)
    if manager is not None and manager != MANAGED_BY:
        return f"managed by {manager}"
    cluster = annotations.get(CLUSTER_ANNOTATION)
    if manager is not None and cluster is not None:
        return f"peeringd's for cluster {cluster}"
    if manager is not None or cluster is not None or ADC_ANNOTATION in annotations:
        return "marked in part as peeringd's"
    return None


def peer_adc(peer: live.BGPPeer) -> str:
    """The ADC an owned BGPPeer stands for: its ``peeringd.io/adc`` annotation, else its name."""
    return dict(peer.annotations).get(ADC_ANNOTATION) or peer.name


def _description_prefix(cluster: str) -> str:
    return f"{MANAGED_BY}:{cluster}:"


def owns_neighbour(neighbour: live.Neighbour, cluster: str) -> bool:
    return (neighbour.description or "").startswith(_description_prefix(cluster))


def description(cluster: str, node: str) -> str:
    """The description that marks a neighbour as this cluster's, naming its node.

    Long node names are cut to the device's limit; ownership needs only the prefix.
    """
    return (_description_prefix(cluster) + node)[:DESCRIPTION_LIMIT]
