"""Fixtures shared by the adapter and runtime tests: a Kubernetes API server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from peeringd.lab.kubeapi import BUNDLED_CRDS, CalicoApi, KubeApiServer
from tests.support import SHARED

CRDS = SHARED / "calico-crds"
# Upstream's files when they are beside the repository; else the bundled copy, which
# tests/kubeapi proves equal to them wherever both exist.
CRD_SOURCE = CRDS if CRDS.is_dir() else BUNDLED_CRDS


def node_object(name: str, address: str, **labels: str) -> dict[str, Any]:
    """A Kubernetes Node as calico-node leaves it: its BGP address annotated in CIDR form."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"projectcalico.org/IPv4Address": f"{address}/24"},
        },
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def pool_object(group: str, cidr: str = "192.168.0.0/16") -> dict[str, Any]:
    return {
        "apiVersion": group,
        "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool"},
        "spec": {"cidr": cidr, "ipipMode": "Always", "natOutgoing": True},
    }


@dataclass
class Cluster:
    """A running API server seeded like a fresh kubeadm + Calico cluster, and its kubeconfig."""

    server: KubeApiServer
    kubeconfig: Path
    group: str

    def add_node(self, name: str, address: str, **labels: str) -> None:
        self.server.put(node_object(name, address, **labels))

    def resource(self, plural: str) -> str:
        return f"{plural}.{self.group.split('/')[0]}"


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    servers: list[KubeApiServer] = []

    def start(calico_api: CalicoApi = "v1", nodes: int = 3, history_limit: int = 10_000) -> Cluster:
        server = KubeApiServer(CRD_SOURCE, calico_api, history_limit=history_limit)
        server.start()
        servers.append(server)
        group = "projectcalico.org/v3" if calico_api in ("v3", "both") else "crd.projectcalico.org/v1"
        if calico_api != "none":
            server.put(pool_object(group))
        cluster = Cluster(server, server.write_kubeconfig(tmp_path / f"kubeconfig-{len(servers)}"), group)
        for index in range(nodes):
            cluster.add_node(f"node-{index + 1}", f"10.0.0.{11 + index}")
        server.clear_journal()
        return cluster

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    """A default install: Calico's v1 CRDs, three nodes, the default IPPool."""
    return cluster_factory()
