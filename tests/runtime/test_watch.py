"""The daemon's node cache against the lab's API server: list once, watch, list again only on 410."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from peeringd.adapters.calico import Calico
from peeringd.lab.kubeapi import JournalEntry
from peeringd.runtime.watch import NodeCache
from tests.bgplab.poll import until
from tests.conftest import Cluster, node_object


class Started:
    """A running cache and the pass requests it made."""

    def __init__(self, cluster: Cluster, selector: str = "", timeout_seconds: int = 60) -> None:
        self.cluster = cluster
        self.reasons: list[str] = []
        self.cache = NodeCache(
            Calico.connect(cluster.kubeconfig),
            lambda: selector,
            self.reasons.append,
            timeout_seconds=timeout_seconds,
        )
        self.cache.start()

    def names(self, selector: str = "") -> list[str] | None:
        nodes = self.cache.nodes(selector)
        return None if nodes is None else sorted(node.name for node in nodes)

    def requests(self, verb: str) -> int:
        return self.cluster.server.count(verb, resource="nodes")


@pytest.fixture
def start() -> Iterator[Callable[..., Started]]:
    started: list[Started] = []

    def make(cluster: Cluster, selector: str = "", timeout_seconds: int = 60) -> Started:
        started.append(Started(cluster, selector, timeout_seconds))
        return started[-1]

    yield make
    for each in started:
        each.cache.stop()


def test_the_nodes_are_listed_once_and_followed_by_the_watch(
    cluster: Cluster, start: Callable[..., Started]
) -> None:
    running = start(cluster)
    until(running.names, lambda names: names is not None, timeout=10, what="the cache live")
    cluster.add_node("node-4", "10.0.0.14")

    until(running.names, lambda names: names is not None and "node-4" in names, timeout=10, what="node-4")
    assert running.reasons == ["node node-4 joined"]
    assert running.requests("list") == 1


def test_a_watch_the_server_ended_is_opened_again_without_listing(
    cluster: Cluster, start: Callable[..., Started]
) -> None:
    running = start(cluster, timeout_seconds=1)
    until(lambda: running.requests("watch"), lambda count: count >= 3, timeout=20, what="three watches")
    cluster.server.delete("nodes", "node-2")

    until(running.names, lambda names: names == ["node-1", "node-3"], timeout=10, what="node-2 gone")
    assert running.requests("list") == 1
    assert running.reasons == ["node node-2 left"]


def test_a_forgotten_resource_version_makes_it_list_again(
    cluster_factory: Callable[..., Cluster], start: Callable[..., Started]
) -> None:
    """Five nodes join between the list and the watch, beyond the server's history: 410, list."""
    cluster = cluster_factory(history_limit=3)

    def join_five(_: JournalEntry) -> None:
        for index in range(5):
            cluster.server.put(node_object(f"late-{index}", f"10.0.1.{index + 1}"))

    cluster.server.before_request("watch", "nodes", join_five)
    running = start(cluster)

    until(running.names, lambda names: names is not None and len(names) == 8, timeout=10, what="8 nodes")
    assert running.requests("list") == 2
    assert running.reasons == ["nodes changed while the watch was down"]


def test_a_change_that_peering_does_not_read_asks_for_no_pass(
    cluster: Cluster, start: Callable[..., Started]
) -> None:
    """A label or heartbeat changes the Node, not the address or AS it peers from."""
    running = start(cluster)
    until(running.names, lambda names: names is not None, timeout=10, what="the cache live")
    cluster.add_node("node-1", "10.0.0.11", zone="b")
    cluster.add_node("node-2", "10.0.0.22")

    until(lambda: running.reasons, lambda reasons: len(reasons) >= 1, timeout=10, what="a pass asked for")
    assert running.reasons == ["node node-2 changed"]


def test_another_selector_is_not_answered_from_the_cache(
    cluster: Cluster, start: Callable[..., Started]
) -> None:
    running = start(cluster, selector="role=edge")
    cluster.add_node("edge-1", "10.0.0.50", role="edge")

    until(lambda: running.names("role=edge"), lambda names: names == ["edge-1"], timeout=10, what="edge-1")
    assert running.names("") is None
