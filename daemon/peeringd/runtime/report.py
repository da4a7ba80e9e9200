"""How plans read to a human: a diff per system, then what was found and refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from peeringd.core import guards, live
from peeringd.core.plan import (
    CALICO,
    Action,
    Change,
    ConfigurationChange,
    FeatureChange,
    MaxPathsChange,
    NeighbourChange,
    PeerChange,
    Plan,
    RouteInstallChange,
    RouterChange,
    SaveChange,
)

__all__ = ["describe", "plan_text", "subject"]

_MARK = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}


def plan_text(planned: Plan, refusals: tuple[guards.Refusal, ...], calico_group: str | None) -> str:
    """The plan as a readable diff, one block per system, ending with a summary line."""
    return "\n".join(_plan_lines(planned, refusals, calico_group)) + "\n"


def _plan_lines(
    planned: Plan, refusals: tuple[guards.Refusal, ...], calico_group: str | None
) -> Iterator[str]:
    for target in planned.targets:
        yield f"{target} ({calico_group})" if target == CALICO and calico_group else target
        for change in planned.for_target(target):
            yield f"  {_MARK[change.action]} {describe(change)}"
    for title, lines in (
        ("errors", [f"{f.target}: {f.message}" for f in planned.errors]),
        ("warnings", [f"{f.target}: {f.message}" for f in planned.findings if f.severity == "warning"]),
        ("refused", [f"{r.message} (policy.{r.policy})" for r in refusals]),
    ):
        if lines:
            yield f"{title}:"
            yield from (f"  {line}" for line in lines)
    counts = Counter(change.action for change in planned.changes)
    if not planned.changes:
        yield "No changes: live state matches the file."
    else:
        yield (
            f"Plan: {counts[Action.CREATE]} to add, {counts[Action.UPDATE]} to change, "
            f"{counts[Action.DELETE]} to remove."
        )


def describe(change: Change) -> str:
    """One change in the words of the system it applies to."""
    match change:
        case PeerChange(name=name, before=before, after=after):
            if after is None:
                return f"BGPPeer {name}"
            fields = f"peerIP {after.peer_ip}, asNumber {after.as_number}"
            if before is None:
                return f"BGPPeer {name}: {fields} (global peer)"
            return f"BGPPeer {name}: {_arrow(before.model_dump(), after.model_dump())}"
        case ConfigurationChange(before=before, after=after):
            old = before.model_dump() if before else {}
            return f"BGPConfiguration default: {_arrow(old, after.model_dump(exclude_none=True))}"
        case FeatureChange():
            return "feature BGP: off -> on"
        case RouterChange(before=None, after=after):
            return f"router bgp {after}"
        case RouterChange(before=before, after=after):
            return f"router bgp {before} -> {after} (every session drops)"
        case NeighbourChange(address=address, before=before, after=after):
            spec = after or before
            assert spec is not None
            if before is not None and after is not None:
                return f"neighbor {address}: {_arrow(before.model_dump(), after.model_dump())}"
            return f"neighbor {address} remote-as {spec.remote_as} description {spec.description}"
        case MaxPathsChange(before=before, after=after):
            return f"max-paths: {_max_paths(before)} -> {_max_paths(after)}"
        case RouteInstallChange(after=after):
            return "ns route-install bgp" if after else "no ns route-install bgp"
        case SaveChange():
            return "save the running configuration"
    raise AssertionError(f"unknown change {change!r}")


def subject(change: Change) -> str:
    """The object a change is about, named as its system names it."""
    match change:
        case PeerChange(name=name):
            return f"BGPPeer {name}"
        case ConfigurationChange():
            return "BGPConfiguration default"
        case FeatureChange():
            return "feature BGP"
        case RouterChange():
            return "router bgp"
        case NeighbourChange(address=address):
            return f"neighbor {address}"
        case MaxPathsChange():
            return "max-paths"
        case RouteInstallChange():
            return "ns route-install bgp"
        case SaveChange():
            return "saved configuration"
    raise AssertionError(f"unknown change {change!r}")


def _arrow(before: dict[str, object], after: dict[str, object]) -> str:
    keys = [key for key in after if before.get(key) != after[key]]
    return ", ".join(f"{key} {before.get(key)} -> {after[key]}" for key in keys)


def _max_paths(paths: live.MaxPaths) -> str:
    return f"ebgp {paths.ebgp or 'default'}, ibgp {paths.ibgp or 'default'}"
