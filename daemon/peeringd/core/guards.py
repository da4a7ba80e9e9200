"""Guards: plans too destructive to apply without the file saying so.

A refused plan is applied not at all, on no system: half of a plan can be worse
than none (an ADC moved to a new AS while Calico still dials the old one).

Adoptions and releases are counted apart from additions and removals: they only
add or remove marks and touch no session, so no guard refuses them; an adoption
counts as one more managed object when the guards ask whether a plan empties a
system.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from peeringd.core import desired, live, ownership
from peeringd.core.plan import (
    CALICO,
    CALICO_DEFAULT_AS,
    Action,
    ConfigurationChange,
    NeighbourChange,
    PeerChange,
    Plan,
    RouterChange,
)

__all__ = ["Refusal", "check"]


class Refusal(BaseModel):
    """Why a plan is not applied, and which policy field would allow it."""

    model_config = ConfigDict(frozen=True)

    target: str
    policy: str
    message: str


def check(state: desired.PeeringState, observed: live.LiveState, planned: Plan) -> tuple[Refusal, ...]:
    """The guards ``planned`` breaks under ``state.policy``; empty when it may be applied."""
    return tuple(_refusals(state, observed, planned))


def _refusals(state: desired.PeeringState, observed: live.LiveState, planned: Plan) -> Iterator[Refusal]:
    policy = state.policy
    deletes = Counter(change.target for change in planned.changes if change.action == Action.DELETE)
    for target, count in deletes.items():
        if count > policy.max_deletes:
            yield Refusal(
                target=target,
                policy="maxDeletes",
                message=f"{target}: {count} removals exceed policy.maxDeletes={policy.max_deletes}",
            )
    if not policy.allow_empty:
        yield from _emptied(state.cluster.name, observed, planned)
    if not policy.allow_as_change:
        yield from _as_changes(planned)


def _emptied(cluster: str, observed: live.LiveState, planned: Plan) -> Iterator[Refusal]:
    managed: Counter[str] = Counter()
    if observed.calico is not None:
        managed[CALICO] = sum(ownership.owns_peer(peer, cluster) for peer in observed.calico.peers)
    for snapshot in observed.adcs:
        managed[snapshot.name] = sum(
            ownership.owns_neighbour(neighbour, cluster) for neighbour in snapshot.neighbours
        )
    remaining = managed.copy()
    for change in planned.changes:
        if isinstance(change, PeerChange | NeighbourChange):
            remaining[change.target] += {Action.CREATE: 1, Action.ADOPT: 1, Action.DELETE: -1}.get(
                change.action, 0
            )
        elif isinstance(change, RouterChange) and change.action == Action.UPDATE:
            remaining[change.target] -= managed[change.target]
    for target, count in managed.items():
        if count and remaining[target] <= 0:
            what = "BGPPeer" if target == CALICO else "neighbour"
            yield Refusal(
                target=target,
                policy="allowEmpty",
                message=f"{target}: the plan removes every peeringd {what} ({count}); "
                "set policy.allowEmpty: true if that is meant",
            )


def _as_changes(planned: Plan) -> Iterator[Refusal]:
    for change in planned.changes:
        if isinstance(change, RouterChange) and change.action == Action.UPDATE:
            yield Refusal(
                target=change.target,
                policy="allowASChange",
                message=f"{change.target}: router bgp {change.before} becomes {change.after}, which "
                "drops every session on the device, neighbours not made by peeringd included",
            )
        elif isinstance(change, ConfigurationChange):
            before = change.before.as_number if change.before else None
            before = CALICO_DEFAULT_AS if before is None else before
            if before != change.after.as_number:
                yield Refusal(
                    target=CALICO,
                    policy="allowASChange",
                    message=f"calico: the cluster AS {before} becomes {change.after.as_number}, "
                    "which re-peers every node",
                )
        elif (
            isinstance(change, PeerChange)
            and change.action == Action.UPDATE
            and change.before is not None
            and change.after is not None
            and change.before.as_number != change.after.as_number
        ):
            yield Refusal(
                target=CALICO,
                policy="allowASChange",
                message=f"calico: BGPPeer {change.name} moves from AS {change.before.as_number} "
                f"to {change.after.as_number}, which drops its sessions",
            )
