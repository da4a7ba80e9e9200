"""One reconcile pass: observe, plan, guard, apply, verify, report.

The one function behind ``apply``, ``run``, the lab and the tests. Each system
(Calico, every ADC) is observed and applied on its own: one that is down is
reported and the others are still reconciled. Systems are observed at the same
time, and the ADCs are changed at the same time, each in its own thread (their
time is spent waiting for devices and the API server), so no ADC waits for
another. Calico is changed once every ADC is done: an
ADC whose configuration failed gets no Calico peer pointing at it in the same
pass. A 409 from the API server re-reads and re-plans instead of overwriting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from peeringd.adapters.calico import Calico
from peeringd.adapters.device import Device
from peeringd.adapters.frr import Frr
from peeringd.adapters.netscaler import NetScaler
from peeringd.adapters.statefile import LoadedState
from peeringd.core import guards, live
from peeringd.core.desired import PeeringState
from peeringd.core.plan import CALICO, Change, PeerChange, Plan, SaveChange, SecretChange, plan
from peeringd.errors import CalicoConflict, PeeringdError, StateFileError, VerificationFailed
from peeringd.runtime import report

__all__ = ["NodeSource", "Outcome", "Planner", "Report", "Systems", "observe", "reconcile"]

_CONFLICT_RETRIES = 3
_T = TypeVar("_T")
_DRIVERS: dict[str, type[NetScaler] | type[Frr]] = {"netscaler": NetScaler, "frr": Frr}

log = structlog.get_logger("peeringd")


class NodeSource(Protocol):
    """Where a pass finds the Nodes without listing them (the daemon's watched cache)."""

    def nodes(self, selector: str) -> tuple[live.Node, ...] | None:
        """The Nodes ``selector`` selects, or None when they are not known to be current."""
        ...


@dataclass
class Systems:
    """The connections a pass uses, kept open across passes.

    ``calico`` is None when Calico is not observed (``--only calico`` still observes it;
    ``--only adc`` too, read-only, because the nodes it lists are the ADCs' neighbours).
    ADCs missing from ``devices`` are not observed. Only targets in ``scope`` (all when
    None) are changed. ``nodes``, when given, saves listing the Nodes while it knows them.
    """

    calico: Calico | None
    devices: Mapping[str, Device] = field(default_factory=dict)
    scope: frozenset[str] | None = None
    nodes: NodeSource | None = None

    @classmethod
    def connect(
        cls,
        loaded: LoadedState,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        only: str | None = None,
        nodes: NodeSource | None = None,
    ) -> Systems:
        """The systems of the file, ``only`` "calico" or "adc" if asked. Device sessions open
        on first use; the files they need are checked now, each problem naming its line."""
        state = loaded.state
        devices: dict[str, Device] = {}
        if only in (None, "adc"):
            problems = [
                loaded.locate(("adcs", index, "ssh", field), f"{path} does not exist")
                for index, adc in enumerate(state.adcs)
                for field, path in (
                    ("passwordFile", adc.ssh.password_file),
                    ("keyFile", adc.ssh.key_file),
                    ("knownHostsFile", adc.ssh.known_hosts_file),
                )
                if path is not None and not path.is_file()
            ]
            if problems:
                raise StateFileError(problems)
            devices = {adc.name: _DRIVERS[adc.platform](adc) for adc in state.adcs}
        calico = Calico.connect(kubeconfig, context or state.cluster.kubeconfig_context)
        scope = {None: None, "calico": frozenset({CALICO}), "adc": frozenset(devices)}[only]
        return cls(calico=calico, devices=devices, scope=scope, nodes=nodes)

    def __enter__(self) -> Systems:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        if self.calico is not None:
            self.calico.close()


class Outcome(StrEnum):
    CONVERGED = "converged"  # live matches the file (after applying, verified)
    DRIFT = "drift"  # changes are pending and were not applied (plan, observe mode)
    REFUSED = "refused"  # a guard refused the plan; nothing was applied
    FAILED = "failed"  # a system could not be observed, changed or verified


@dataclass(frozen=True)
class Report:
    """What one pass saw and did."""

    outcome: Outcome
    planned: Plan
    refusals: tuple[guards.Refusal, ...]
    applied: tuple[Change, ...]
    errors: tuple[tuple[str, PeeringdError], ...]
    observed: live.LiveState
    # What the pass started from, when it applied something (confirm-or-revert needs it).
    before: live.LiveState | None = None

    @property
    def transient(self) -> bool:
        """Whether every error may go away by itself (worth retrying soon)."""
        return all(error.transient for _, error in self.errors)


Planner = Callable[[PeeringState, live.LiveState], Plan]


def reconcile(
    loaded: LoadedState,
    systems: Systems,
    *,
    apply: bool = True,
    confirm: Callable[[Plan, tuple[guards.Refusal, ...]], bool] | None = None,
    revision: str | None = None,
    fence: Callable[[str], None] | None = None,
    planner: Planner = plan,
) -> Report:
    """Run one pass. With ``apply`` False (or ``policy.mode: observe``) nothing is changed.

    ``confirm`` is asked before anything is applied (the CLI's prompt); ``revision``
    is the git revision of the file, written into every change event. ``planner``
    makes the plan and, after applying, checks that nothing is left of it
    (``release.release`` for ``peeringd release``). ``fence`` is called with each
    target's name just before its write session (the daemon's leader-election check):
    a PeeringdError it raises leaves that target unwritten and is reported as its error.
    """
    state = loaded.state
    enforce = apply and state.policy.mode == "enforce"
    applied_before: tuple[Change, ...] = ()  # by attempts that ended in a 409
    first: live.LiveState | None = None
    for attempt in range(_CONFLICT_RETRIES):
        observed, errors = observe(loaded, systems)
        if first is None:  # a 409's retry re-reads; the revert goes back to the first read
            first = observed
        planned = planner(state, observed)
        if systems.scope is not None:
            planned = planned.restricted(systems.scope)
        refusals = guards.check(state, observed, planned)
        if not enforce or not planned.changes:
            return _report_unapplied(planned, refusals, errors, observed)
        if refusals or planned.errors:
            for refusal in refusals:
                log.warning(
                    "plan refused", target=refusal.target, policy=refusal.policy, reason=refusal.message
                )
            outcome = Outcome.REFUSED if refusals else Outcome.FAILED
            return Report(outcome, planned, refusals, (), tuple(errors.items()), observed)
        if confirm is not None and not confirm(planned, refusals):
            return Report(Outcome.DRIFT, planned, refusals, (), tuple(errors.items()), observed)
        applied, apply_errors, held = _apply(loaded, systems, planned, errors, revision, fence=fence)
        applied = applied_before + applied
        conflicted = any(isinstance(error, CalicoConflict) for error in apply_errors.values())
        if conflicted and attempt + 1 < _CONFLICT_RETRIES:
            log.info("conflict: re-reading and re-planning", attempt=attempt + 1)
            applied_before = applied
            continue
        errors.update(apply_errors)
        verified = _verify(loaded, systems, planned, applied, errors=errors, held=held, planner=planner)
        return dataclasses.replace(verified, before=first)
    raise AssertionError("unreachable: the last attempt always returns")


def _report_unapplied(
    planned: Plan,
    refusals: tuple[guards.Refusal, ...],
    errors: dict[str, PeeringdError],
    observed: live.LiveState,
) -> Report:
    outcome = Outcome.FAILED if errors else Outcome.DRIFT if planned.changes else Outcome.CONVERGED
    return Report(outcome, planned, refusals, (), tuple(errors.items()), observed)


def observe(loaded: LoadedState, systems: Systems) -> tuple[live.LiveState, dict[str, PeeringdError]]:
    """Every system's live state, read at the same time; one that fails is missing from it
    and named in the errors."""
    selector = loaded.state.cluster.nodes.selector
    calico = systems.calico
    passwords = any(adc.bgp_password is not None for adc in loaded.state.adcs)
    namespace = loaded.state.cluster.calico_namespace
    readers: dict[str, Callable[[], Any]] = {name: device.observe for name, device in systems.devices.items()}
    if calico is not None:
        known = systems.nodes.nodes(selector) if systems.nodes is not None else None
        readers[CALICO] = lambda: calico.observe(
            selector, nodes=known, passwords=passwords, password_namespace=namespace
        )
    observed: dict[str, Any] = {}
    errors: dict[str, PeeringdError] = {}
    for target, (result, error) in _concurrently(readers).items():
        if error is None:
            observed[target] = result
        else:
            errors[target] = error
            log.error("observe failed", target=target, error=str(error), transient=error.transient)
    devices = tuple(observed[name] for name in systems.devices if name in observed)
    return live.LiveState(calico=observed.get(CALICO), adcs=devices), errors


def _concurrently(tasks: Mapping[str, Callable[[], _T]]) -> dict[str, tuple[_T | None, PeeringdError | None]]:
    """Each task's result or PeeringdError, the tasks run in threads of their own (one task
    runs in this thread). Any other exception is a bug and is raised here."""

    def run(task: Callable[[], _T]) -> tuple[_T | None, PeeringdError | None]:
        try:
            return task(), None
        except PeeringdError as error:
            return None, error

    if len(tasks) <= 1:
        return {target: run(task) for target, task in tasks.items()}
    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="pass") as pool:
        futures = {target: pool.submit(run, task) for target, task in tasks.items()}
        return {target: future.result() for target, future in futures.items()}


def _apply(
    loaded: LoadedState,
    systems: Systems,
    planned: Plan,
    errors: Mapping[str, PeeringdError],
    revision: str | None,
    *,
    fence: Callable[[str], None] | None,
) -> tuple[tuple[Change, ...], dict[str, PeeringdError], frozenset[str]]:
    """Apply each target's changes in the plan's order, the ADCs at the same time, then Calico;
    a failing target does not stop the others.

    Returns what was applied, the failures by target, and the BGPPeers held back because
    their ADC is not configured (not observed, or some of its configuration failed; a
    failed save alone does not hold a peer back: the configuration is there).
    """
    context = {"state_hash": loaded.sha256, "git_revision": revision}
    done: dict[str, list[Change]] = {target: [] for target in planned.targets}
    calico_changes = planned.for_target(CALICO)

    def apply_device(target: str) -> Callable[[], None]:
        changes = planned.for_target(target)

        def write() -> None:
            if fence is not None:
                fence(target)
            _record(systems.devices[target].apply(changes), context, done[target])

        return write

    devices = {target: apply_device(target) for target in planned.targets if target != CALICO}
    failures = {target: error for target, (_, error) in _concurrently(devices).items() if error is not None}
    unconfigured = set(errors) | {
        target
        for target in failures
        if any(c not in done[target] for c in planned.for_target(target) if not isinstance(c, SaveChange))
    }
    held = frozenset(
        c.name
        for c in calico_changes
        if isinstance(c, PeerChange) and c.after is not None and c.for_adc in unconfigured
    )
    for name in sorted(held):
        log.warning("BGPPeer waits for its ADC to be configured", target=CALICO, peer=name)
    # The password Secret keeps the old password of an ADC that did not take the new one.
    changes = tuple(
        kept
        for c in calico_changes
        if not (isinstance(c, PeerChange) and c.name in held)
        and (kept := c.holding(unconfigured) if isinstance(c, SecretChange) else c) is not None
    )
    if changes:
        assert systems.calico is not None
        calico, cluster = systems.calico, loaded.state.cluster.name
        try:
            if fence is not None:
                fence(CALICO)
            _record(calico.apply(changes, cluster=cluster, state_hash=loaded.sha256), context, done[CALICO])
        except PeeringdError as calico_error:
            failures[CALICO] = calico_error
    for target, failure in failures.items():
        log.error("apply failed", target=target, error=str(failure), transient=failure.transient)
    return tuple(change for target in planned.targets for change in done[target]), failures, held


def _record(changes: Iterable[Change], context: Mapping[str, Any], done: list[Change]) -> None:
    """Each applied change as one event (side, target, object, action, before, after), kept in
    ``done`` as it comes, so a failure half-way still counts what was applied."""
    for change in changes:
        log.info(
            "change applied",
            side=CALICO if change.target == CALICO else "adc",
            target=change.target,
            object=report.subject(change),
            action=str(change.action),
            **change.model_dump(mode="json", include={"before", "after"}),
            **context,
        )
        done.append(change)


def _verify(
    loaded: LoadedState,
    systems: Systems,
    planned: Plan,
    applied: tuple[Change, ...],
    *,
    errors: dict[str, PeeringdError],
    held: frozenset[str],
    planner: Planner,
) -> Report:
    """Observe again: every target whose changes all applied must now plan nothing, but for
    the BGPPeers held back for their ADC (whose error already says why)."""
    observed, observe_errors = observe(loaded, systems)
    errors.update(observe_errors)
    remaining = planner(loaded.state, observed)
    if systems.scope is not None:
        remaining = remaining.restricted(systems.scope)
    for target in planned.targets:
        if target in errors:
            continue
        left = [
            c
            for c in remaining.for_target(target)
            if not (isinstance(c, PeerChange) and c.name in held)
            and not (isinstance(c, SecretChange) and c.holding(errors) is None)
        ]
        if left:
            errors[target] = VerificationFailed(
                f"{target}: still differs after applying: {', '.join(report.describe(c) for c in left)}"
            )
            log.error("verification failed", target=target, error=str(errors[target]))
    outcome = Outcome.FAILED if errors else Outcome.CONVERGED
    return Report(outcome, planned, (), applied, tuple(errors.items()), observed)
