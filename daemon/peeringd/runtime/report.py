"""How plans read to a human: a diff per system, then what was found and refused."""

from __future__ import annotations

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
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    Plan,
    RouteInstallChange,
    RouterChange,
    SaveChange,
    SecretChange,
)

__all__ = ["describe", "plan_text", "subject", "summary"]

# Adoptions and releases leave the object as it is ("="): only peeringd's marks come or go.
_MARK = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.ADOPT: "=", Action.RELEASE: "="}


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
    if not planned.changes:
        yield "No changes: live state matches the file."
    else:
        yield f"Plan: {summary(planned)}."


def summary(planned: Plan) -> str:
    """``3 to adopt, 1 to add, 0 to change, 0 to remove``: adoptions and releases counted apart,
    and named only when the plan has some."""
    counts = planned.counts()
    words = {
        Action.ADOPT: "to adopt",
        Action.CREATE: "to add",
        Action.UPDATE: "to change",
        Action.DELETE: "to remove",
        Action.RELEASE: "to release",
    }
    always = {Action.CREATE, Action.UPDATE, Action.DELETE}
    return ", ".join(
        f"{counts[action]} {word}" for action, word in words.items() if action in always or counts[action]
    )


def describe(change: Change) -> str:
    """One change in the words of the system it applies to."""
    if change.action in (Action.ADOPT, Action.RELEASE):
        return _marking(change)
    match change:
        case PeerChange(name=name, before=before, after=after):
            if after is None:
                return f"BGPPeer {name}"
            fields = f"peerIP {after.peer_ip}, asNumber {after.as_number}{_secret_ref(after.password)}"
            if before is None:
                return f"BGPPeer {name}: {fields} (global peer)"
            return f"BGPPeer {name}: {_arrow(_peer_fields(before), _peer_fields(after))}"
        case SecretChange():
            return _secret(change)
        case ConfigurationChange(before=before, after=after):
            old = before.model_dump() if before else {}
            return f"BGPConfiguration default: {_arrow(old, after.model_dump(exclude_none=True))}"
        case FeatureChange():
            return "feature BGP: off -> on"
        case RouterChange(before=before, after=after):
            return (
                f"router bgp {after}"
                if before is None
                else f"router bgp {before} -> {after} (every session drops)"
            )
        case NeighbourChange():
            return _neighbour(change)
        case MaxPathsChange(before=before, after=after):
            return f"max-paths: {_max_paths(before)} -> {_max_paths(after)}"
        case RouteInstallChange(after=after):
            return "ns route-install bgp" if after else "no ns route-install bgp"
        case SaveChange():
            return "save the running configuration"
    raise AssertionError(f"unknown change {change!r}")


def _secret(change: SecretChange) -> str:
    """The password Secret: which ADCs' passwords come, change or go, never the passwords."""
    where = f"Secret {change.namespace}/{change.name}"
    if change.after is None:
        return f"{where} (no BGP password is wanted)"
    words = ", ".join(f"{key} {word}" for key, word in change.passwords.items())
    return f"{where}: BGP passwords {words}"


def _neighbour(change: NeighbourChange) -> str:
    before, after, address = change.before, change.after, change.address
    password = f" password {change.password}" if change.password else ""
    if before is not None and after is not None:
        fields = _arrow(_neighbour_fields(before), _neighbour_fields(after))
        return f"neighbor {address}:{f' {fields}' if fields else ''}{password}"
    spec = after or before
    assert spec is not None
    return f"neighbor {address} remote-as {spec.remote_as} description {spec.description}{password}"


def _marking(change: Change) -> str:
    """An adoption or a release: the object as it stands, and the marks that come or go."""
    match change:
        case PeerChange(action=Action.ADOPT, name=name, after=after) if after is not None:
            fields = f"peerIP {after.peer_ip}, asNumber {after.as_number}"
            return (
                f"adopt BGPPeer {name} for {change.for_adc} ({fields}): add peeringd's label and annotations"
            )
        case PeerChange(action=Action.RELEASE, name=name):
            return f"release BGPPeer {name}: remove peeringd's label and annotations"
        case NeighbourChange(action=Action.ADOPT, address=address, after=after) if after is not None:
            return (
                f"adopt neighbor {address} remote-as {after.remote_as}: add description {after.description}"
            )
        case NeighbourChange(action=Action.RELEASE, address=address, before=before) if before is not None:
            return f"release neighbor {address}: remove description {before.description}"
    raise AssertionError(f"not an adoption or release: {change!r}")


def subject(change: Change) -> str:
    """The object a change is about, named as its system names it."""
    match change:
        case PeerChange(name=name):
            return f"BGPPeer {name}"
        case ConfigurationChange():
            return "BGPConfiguration default"
        case SecretChange(namespace=namespace, name=name):
            return f"Secret {namespace}/{name}"
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


def _neighbour_fields(spec: NeighbourSpec) -> dict[str, object]:
    """What a neighbour change shows field by field; its password only as a word, apart."""
    return {"remote_as": spec.remote_as, "description": spec.description}


def _peer_fields(spec: PeerSpec) -> dict[str, object]:
    ref = spec.password
    password = f"Secret {ref.name} key {ref.key}" if ref else "none"
    return {**spec.model_dump(exclude={"password"}), "password": password}


def _secret_ref(ref: live.SecretKeyRef | None) -> str:
    """How a BGPPeer's password reads: the Secret key it comes from, never the password."""
    return "" if ref is None else f", password from Secret {ref.name} key {ref.key}"


def _arrow(before: dict[str, object], after: dict[str, object]) -> str:
    keys = [key for key in after if before.get(key) != after[key]]
    return ", ".join(f"{key} {before.get(key)} -> {after[key]}" for key in keys)


def _max_paths(paths: live.MaxPaths) -> str:
    return f"ebgp {paths.ebgp or 'default'}, ibgp {paths.ibgp or 'default'}"
