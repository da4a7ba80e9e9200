"""What peeringd may change: only objects that carry its marks.

Calico BGPPeers are ours when they carry the managed-by label AND the cluster
annotation of this cluster; ADC neighbours are ours when their description
starts with ``peeringd:<cluster>:``. Copied labels alone never make an object
ours, and two clusters sharing an ADC never touch each other's neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping

from peeringd.core import live

__all__ = [
    "CLUSTER_ANNOTATION",
    "DESCRIPTION_LIMIT",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "STATE_HASH_ANNOTATION",
    "description",
    "owns",
    "owns_neighbour",
    "owns_peer",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "peeringd"
CLUSTER_ANNOTATION = "peeringd.io/cluster"
STATE_HASH_ANNOTATION = "peeringd.io/state-hash"
# ZebOS and Quagga keep at most 80 characters of a neighbour description.
DESCRIPTION_LIMIT = 80


def owns(labels: Mapping[str, str], annotations: Mapping[str, str], cluster: str) -> bool:
    """Whether a Kubernetes object with these labels and annotations is this cluster's peeringd's."""
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and annotations.get(CLUSTER_ANNOTATION) == cluster


def owns_peer(peer: live.BGPPeer, cluster: str) -> bool:
    return owns(dict(peer.labels), dict(peer.annotations), cluster)


def _description_prefix(cluster: str) -> str:
    return f"{MANAGED_BY}:{cluster}:"


def owns_neighbour(neighbour: live.Neighbour, cluster: str) -> bool:
    return (neighbour.description or "").startswith(_description_prefix(cluster))


def description(cluster: str, node: str) -> str:
    """The description that marks a neighbour as this cluster's, naming its node.

    Long node names are cut to the device's limit; ownership needs only the prefix.
    """
    return (_description_prefix(cluster) + node)[:DESCRIPTION_LIMIT]
