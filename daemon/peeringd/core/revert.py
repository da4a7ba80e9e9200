"""Confirm or revert: which sessions must come back after a pass, and the plan that undoes it.

Pure. The inverse of a change is generic: the action turns around (create <-> delete,
adopt <-> release, update stays update) and ``before`` and ``after`` swap, whatever fields
they hold, so a change kind or a field added later (a password) inverts without this module
knowing it. Two kinds need more: a created BGPConfiguration cannot be deleted by peeringd, so
its inverse sets what an absent one means (AS 64512, mesh on); and a replaced ``router bgp``
took every neighbour of the old stanza with it, so its inverse puts back the neighbours the
device had before the pass, instead of undoing the pass's neighbour changes inside the new
stanza one by one. Turning the BGP feature on and saving are not undone (a save follows the
revert instead).

The revert is a plan like any other, made against the live state read just before it: a
change is undone only where live still shows what the pass wrote, including who owns the
object; where someone changed the object since, it is left alone and named in a finding.
Planning again after the revert finds nothing to do, which is how the pass's verification
and the caller's ``unreverted`` check it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import pydantic

from peeringd.core import live, ownership, secret, status
from peeringd.core.plan import (
    CALICO,
    CALICO_DEFAULT_AS,
    Action,
    Change,
    ConfigurationChange,
    ConfigurationSpec,
    FeatureChange,
    Finding,
    MaxPathsChange,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    Plan,
    RouteInstallChange,
    RouterChange,
    SaveChange,
    SecretChange,
)

__all__ = ["identity", "inverse", "plan", "unconfirmed", "unreverted"]

_OPPOSITE = {
    Action.CREATE: Action.DELETE,
    Action.DELETE: Action.CREATE,
    Action.UPDATE: Action.UPDATE,
    Action.ADOPT: Action.RELEASE,
    Action.RELEASE: Action.ADOPT,
}
# Changes that are not undone: the feature stays on (it carries nothing by itself), and a
# save is not a change of configuration (the revert saves again instead).
_KEPT = (FeatureChange, SaveChange)
# The kinds whose object ``_seen`` finds in live; a kind added later is not undone until it
# is here (undoing what cannot be compared with live could overwrite someone's change).
_READABLE = (
    PeerChange,
    ConfigurationChange,
    SecretChange,
    NeighbourChange,
    RouterChange,
    MaxPathsChange,
    RouteInstallChange,
)

Identity = tuple[str, str, str]


def unconfirmed(
    rows: Sequence[status.Row], established_before: Mapping[tuple[str, str, str], bool]
) -> tuple[status.Row, ...]:
    """The desired sessions that must be Established on both ends and are not: those
    Established before the pass (the ADC's view, ``status.adc_sessions``) and the new ones."""
    return tuple(
        row
        for row in rows
        if established_before.get((row.adc, str(row.address), row.node), True)
        and row.verdict != "established"
    )


def identity(change: Change) -> Identity:
    """(kind, target, object) of what a change touches: one object, one identity."""
    key = getattr(change, "name", None) or getattr(change, "address", None) or ""
    return change.kind, change.target, str(key)


def inverse(change: Change) -> Change | None:
    """The change that undoes ``change``, or None when it is not undone or cannot be said."""
    if isinstance(change, _KEPT):
        return None
    if isinstance(change, ConfigurationChange):
        return _configuration_inverse(change)
    update: dict[str, object] = {"action": _OPPOSITE[change.action]}
    fields = type(change).model_fields
    if "before" in fields and "after" in fields:
        update |= {"before": getattr(change, "after"), "after": getattr(change, "before")}  # noqa: B009
    if "resource_version" in fields:
        update["resource_version"] = None  # the revert reads the current one
    try:
        # Built from the field values themselves, so values of a richer type stay as they are.
        return type(change)(**(dict(change) | update))
    except pydantic.ValidationError:
        # What the type cannot express (a removed `router bgp` stanza) is not undone.
        return None


def _configuration_inverse(change: ConfigurationChange) -> ConfigurationChange:
    """Back to the values before: an unset field (or no object at all) meant Calico's default,
    so the inverse writes the default, for the fields the pass wrote."""
    before = change.before or ConfigurationSpec()
    after = ConfigurationSpec(
        as_number=None
        if change.after.as_number is None
        else before.as_number
        if before.as_number is not None
        else CALICO_DEFAULT_AS,
        node_to_node_mesh=None
        if change.after.node_to_node_mesh is None
        else before.node_to_node_mesh is not False,
    )
    return ConfigurationChange(action=Action.UPDATE, before=change.after, after=after)


def plan(applied: Sequence[Change], before: live.LiveState, observed: live.LiveState, cluster: str) -> Plan:
    """The plan that undoes ``applied`` (in reverse order), from ``observed``, the live state
    now; ``before`` is the live state the pass started from. Objects changed by someone else
    since the pass, and changes that are not undone, are findings."""
    changes: list[Change] = []
    findings: list[Finding] = []
    replaced = {c.adc for c in applied if isinstance(c, RouterChange) and c.before is not None}
    for change in reversed(applied):
        if isinstance(change, NeighbourChange) and change.adc in replaced:
            continue  # made inside the new stanza: the old one comes back whole
        undo = inverse(change) if isinstance(change, _READABLE) else None
        if undo is None:
            if not isinstance(change, _KEPT) and _observed(change.target, observed):
                findings.append(_finding(change, "cannot be undone by peeringd; left as it is"))
            continue
        seen = _seen(change, observed, cluster)
        if seen is None:
            continue  # the target was not observed now: it is in the pass's errors
        if _password_unreadable(change, seen):
            why = "the device shows its password obfuscated, so whether to undo it is unclear"
            findings.append(_finding(change, f"{why}; left as it is"))
            continue
        if _holds(undo, seen):
            continue  # undone already
        if not _holds(change, seen):
            findings.append(_finding(change, "was changed by someone else since the pass; left as it is"))
            continue
        changes.append(_current(undo, seen))
        if isinstance(change, RouterChange):
            changes += _neighbours_back(change.adc, before)
    for target in dict.fromkeys(c.target for c in changes):
        if any(isinstance(c, SaveChange) and c.target == target for c in applied):
            changes.append(SaveChange(action=Action.UPDATE, adc=target))
    return Plan(changes=_in_target_order(changes), findings=tuple(findings))


def unreverted(revert: Plan, observed: live.LiveState, cluster: str) -> tuple[Change, ...]:
    """The revert's changes whose object does not show what the revert wrote: each object's
    last change counts (a neighbour put back after its stanza came back)."""
    last = {identity(change): change for change in revert.changes if not isinstance(change, _KEPT)}
    return tuple(
        change
        for change in last.values()
        if (seen := _seen(change, observed, cluster)) is None or not _holds(change, seen)
    )


@dataclass(frozen=True)
class _Seen:
    """An object as live shows it: its value as the change kind holds it (None: absent),
    whether it is peeringd's, and the resourceVersion to write it with."""

    value: object
    owned: bool = True
    resource_version: str | None = None


def _seen(change: Change, observed: live.LiveState, cluster: str) -> _Seen | None:
    """The object ``change`` touches, as ``observed`` shows it; None when not observed."""
    if change.target == CALICO:
        return None if observed.calico is None else _seen_in_calico(change, observed.calico, cluster)
    device = observed.adc(change.target)
    if device is None:
        return None
    match change:
        case NeighbourChange(address=address):
            found = next((n for n in device.neighbours if n.address == address), None)
            return _Seen(None if found is None else NeighbourSpec.of(found))
        case RouterChange():
            return _Seen(device.router_as)
        case MaxPathsChange():
            return _Seen(device.max_paths)
        case RouteInstallChange():
            return _Seen(device.route_install)
    raise TypeError(f"no live view of {change.kind}")


def _seen_in_calico(change: Change, calico: live.CalicoSnapshot, cluster: str) -> _Seen | None:
    match change:
        case PeerChange(name=name):
            peer = next((p for p in calico.peers if p.name == name), None)
            if peer is None:
                return _Seen(None)
            return _Seen(PeerSpec.of(peer), ownership.owns_peer(peer, cluster), peer.resource_version)
        case SecretChange():
            stored = calico.passwords
            if stored is None:
                return None  # not read: the file wants no password now
            if not stored.exists:
                return _Seen(None)
            owned = ownership.owns(dict(stored.labels), dict(stored.annotations), cluster)
            return _Seen(stored.data, owned, stored.resource_version)
        case ConfigurationChange():
            configuration = calico.configuration
            if configuration is None:
                return _Seen(ConfigurationSpec(as_number=CALICO_DEFAULT_AS, node_to_node_mesh=True))
            effective = ConfigurationSpec(
                as_number=configuration.as_number or CALICO_DEFAULT_AS,
                node_to_node_mesh=configuration.node_to_node_mesh is not False,
            )
            return _Seen(effective, True, configuration.resource_version)
    raise TypeError(f"no live view of {change.kind}")


def _holds(change: Change, seen: _Seen) -> bool:
    """Whether live shows what ``change`` writes, marks included."""
    after = getattr(change, "after", None)
    if isinstance(after, ConfigurationSpec) and isinstance(seen.value, ConfigurationSpec):
        # Fields the change leaves unset are not its business.
        wanted = after.model_dump(exclude_none=True)
        return wanted == {key: getattr(seen.value, key) for key in wanted}
    if not isinstance(change, PeerChange | SecretChange) or after is None:
        # A neighbour's description is its mark, so its spec says whose it is.
        return _same(after, seen.value)
    return after == seen.value and seen.owned == (change.action != Action.RELEASE)


def _same(wanted: object, shown: object) -> bool:
    """Equal, a neighbour password the device shows obfuscated taken to agree (as plans do)."""
    if isinstance(wanted, NeighbourSpec) and isinstance(shown, NeighbourSpec):
        return replace(wanted, password=None) == replace(shown, password=None) and secret.agrees(
            wanted.password, shown.password, rotated=False
        )
    return wanted == shown


def _password_unreadable(change: Change, seen: _Seen) -> bool:
    """Whether ``change`` changed a neighbour's password that the device now shows in a form
    that cannot be compared: undone or not cannot be told."""
    shown = seen.value.password if isinstance(seen.value, NeighbourSpec) else None
    return (
        isinstance(change, NeighbourChange)
        and change.password is not None
        and shown is not None
        and (shown.obfuscated or not shown.known)
    )


def _current(undo: Change, seen: _Seen) -> Change:
    """The inverse as written now: with the object's current resourceVersion (a write by
    someone else between reading and writing is a 409, as in any pass)."""
    if "resource_version" not in type(undo).model_fields:
        return undo
    return undo.model_copy(update={"resource_version": seen.resource_version})


def _neighbours_back(adc: str, before: live.LiveState) -> Iterator[Change]:
    """The old stanza's neighbours, created again after ``router bgp`` is back."""
    snapshot = before.adc(adc)
    for neighbour in snapshot.neighbours if snapshot else ():
        yield NeighbourChange(
            action=Action.CREATE,
            adc=adc,
            address=neighbour.address,
            before=None,
            after=NeighbourSpec.of(neighbour),
        )


def _in_target_order(changes: list[Change]) -> tuple[Change, ...]:
    """Calico first, then each ADC, each in its own order: the reverse of a pass."""
    targets = sorted(dict.fromkeys(c.target for c in changes), key=lambda target: target != CALICO)
    return tuple(c for target in targets for c in changes if c.target == target)


def _finding(change: Change, why: str) -> Finding:
    kind, target, key = identity(change)
    what = f"{change.action} of {kind} {key}".rstrip()
    return Finding(severity="warning", target=target, message=f"{what}: {why}")


def _observed(target: str, observed: live.LiveState) -> bool:
    return observed.calico is not None if target == CALICO else observed.adc(target) is not None
