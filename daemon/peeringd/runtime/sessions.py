"""``peeringd status``: every desired BGP session from both ends, as a table or JSON.

The ADC's end comes from its ``show ip bgp summary``; calico-node's end from
CalicoNodeStatus objects, which make calico-node on each node they name write
its BGP status into them. Each object costs the API server calico-node's writes
(at most one per update period, only when the status changed) for as long as it
exists, so only ``status`` creates them, never the daemon: for the selected
nodes that have none, marked as peeringd's, with an update period that keeps
all of them together at about ten writes a second (``core.status.update_period``)
and an expiry annotation. ``status`` then waits, at most the update period plus
2 s, for calico-node's first report (it comes at once when calico-node runs);
a node still silent is ``unknown``, not down. Later calls within the retention
(``--keep``, 15 minutes) find the objects and answer at once; each call renews
the expiry when less than half of it is left. Expired objects are removed by a
later ``status``, ``apply`` or the daemon, or at once with ``--keep 0``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta

import structlog

from peeringd.adapters.calico import Calico
from peeringd.adapters.statefile import LoadedState
from peeringd.core import desired, live, nodes, status
from peeringd.core.plan import CALICO
from peeringd.errors import PeeringdError
from peeringd.runtime import reconcile

__all__ = ["DEFAULT_KEEP", "StatusOptions", "collect", "remove_expired", "table"]

DEFAULT_KEEP = timedelta(minutes=15)
# calico-node reports a new CalicoNodeStatus at once; its writes reach the API
# server within moments, and `status` must answer within the wait's bound anyway.
_POLL_SECONDS = 1.0
_GRACE_SECONDS = 2

log = structlog.get_logger("peeringd")


@dataclasses.dataclass(frozen=True)
class StatusOptions:
    """How ``status`` uses CalicoNodeStatus objects.

    ``keep``: how long those it creates stay for later calls (zero: removed before it
    returns); ``period``: calico-node's update period, None for one the cluster's size
    can carry.
    """

    keep: timedelta = DEFAULT_KEEP
    period: int | None = None


def collect(
    loaded: LoadedState,
    systems: reconcile.Systems,
    options: StatusOptions = StatusOptions(),
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[tuple[status.Row, ...], dict[str, PeeringdError]]:
    """Both ends of each desired session: calico-node's view first (creating and waiting for
    what is missing), then every device's, so that both are read at about the same time."""
    errors: dict[str, PeeringdError] = {}
    calico = systems.calico
    if calico is None:
        return (), errors
    state = loaded.state
    try:
        snapshot = calico.observe(state.cluster.nodes.selector)
    except PeeringdError as error:
        return (), {CALICO: error}
    try:
        statuses = _calico_node_view(calico, state, snapshot, options, clock)
    except PeeringdError as error:
        errors[CALICO] = error
        statuses = ()
    observed, device_errors = reconcile.observe(loaded, dataclasses.replace(systems, calico=None))
    errors.update(device_errors)
    return status.rows(state, snapshot, observed.adcs, statuses), errors


def _calico_node_view(
    calico: Calico,
    state: desired.PeeringState,
    snapshot: live.CalicoSnapshot,
    options: StatusOptions,
    clock: Callable[[], datetime],
) -> tuple[live.NodeStatus, ...]:
    cluster = state.cluster.name
    speakers, _ = nodes.speakers(snapshot.nodes, state.cluster.as_number, state.cluster.nodes.exclude)
    wanted = tuple(speaker.node for speaker in speakers)
    period = options.period or status.update_period(len(wanted))
    existing = calico.node_statuses(cluster=cluster)
    todo = status.plan_statuses(existing, wanted, clock(), options.keep)
    for name in todo.delete:
        calico.delete_node_status(name)
    for name in todo.extend:
        calico.extend_node_status(name, todo.expires)
    for node in todo.create:
        calico.create_node_status(node, cluster=cluster, period=period, expires=todo.expires)
    statuses = calico.node_statuses(cluster=cluster) if todo.delete or todo.create else existing
    statuses = _wait_for_reports(calico, cluster, wanted, statuses, period + _GRACE_SECONDS)
    if not options.keep:
        for name in (s.name for s in statuses if s.owned):
            calico.delete_node_status(name)
    by_node = {s.node: s for s in statuses if s.node in set(wanted)}
    return tuple(by_node[node] for node in wanted if node in by_node)


def _wait_for_reports(
    calico: Calico,
    cluster: str,
    wanted: tuple[str, ...],
    statuses: tuple[live.NodeStatus, ...],
    bound: float,
) -> tuple[live.NodeStatus, ...]:
    """The statuses once every wanted node's has a report, or after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    silent = _silent(wanted, statuses)
    if silent:
        log.info("waiting for calico-node's first report", nodes=len(silent), at_most_seconds=bound)
    while silent and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(_POLL_SECONDS, left))
        statuses = calico.node_statuses(cluster=cluster)
        silent = _silent(wanted, statuses)
    return statuses


def _silent(wanted: tuple[str, ...], statuses: tuple[live.NodeStatus, ...]) -> list[str]:
    reported = {s.node for s in statuses if s.reported}
    return [node for node in wanted if node not in reported]


def remove_expired(
    calico: Calico, cluster: str, nodes: Collection[str] | None = None, now: datetime | None = None
) -> int:
    """Remove peeringd's CalicoNodeStatus objects whose retention ended, or whose node is not
    among ``nodes`` (when known): one LIST of peeringd's (usually none), a DELETE for each.
    Returns how many went."""
    ours = calico.node_statuses(cluster=cluster, only_ours=True)
    expired = status.expired(ours, now or datetime.now(UTC), nodes)
    for name in expired:
        calico.delete_node_status(name)
    if expired:
        log.info("expired CalicoNodeStatus objects removed", count=len(expired))
    return len(expired)


_COLUMNS = ("NODE", "ADDRESS", "ADC", "UP/DOWN", "PREFIXES", "CALICO", "SINCE", "VERDICT")


def table(state: desired.PeeringState, rows: tuple[status.Row, ...]) -> str:
    """One table per ADC, like ``calicoctl node status`` with the ADC's column beside it."""
    return "\n".join(_tables(state, rows)) + "\n"


def _tables(state: desired.PeeringState, rows: tuple[status.Row, ...]) -> Iterator[str]:
    for adc in state.adcs:
        mine = [row for row in rows if row.adc == adc.name]
        yield f"{adc.name} (AS {adc.as_number}, nodes peer with {adc.peer_ip})"
        cells = [
            (
                row.node,
                str(row.address),
                row.adc_state or "-",
                row.adc_up_down or "-",
                "-" if row.adc_prefixes is None else str(row.adc_prefixes),
                row.calico_state or "-",
                row.calico_since or "-",
                row.verdict_text,
            )
            for row in mine
        ]
        widths = [max(len(text) for text in column) for column in zip(_COLUMNS, *cells, strict=False)]
        for line in (_COLUMNS, *cells):
            yield (
                "  " + "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            )
        if not mine:
            yield "  (no selected node)"
