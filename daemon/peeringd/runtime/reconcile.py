"""One reconcile pass: observe, plan, guard, apply, verify, report.

The one function behind ``apply``, ``run``, the lab and the tests. Each system
(Calico, every ADC) is observed and applied on its own: one that is down is
reported and the others are still reconciled. An ADC whose configuration failed
gets no Calico peer pointing at it in the same pass. A 409 from the API server
re-reads and re-plans instead of overwriting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from peeringd.adapters.calico import Calico
from peeringd.adapters.device import Device
from peeringd.adapters.frr import Frr
from peeringd.adapters.netscaler import NetScaler
from peeringd.adapters.statefile import LoadedState
from peeringd.core import guards, live
from peeringd.core.desired import PeeringState
from peeringd.core.plan import CALICO, Change, PeerChange, Plan, SaveChange, plan
from peeringd.errors import CalicoConflict, PeeringdError, StateFileError, VerificationFailed
from peeringd.runtime import report

__all__ = ["Outcome", "Planner", "Report", "Systems", "observe", "reconcile"]

_CONFLICT_RETRIES = 3
_DRIVERS: dict[str, type[NetScaler] | type[Frr]] = {"netscaler": NetScaler, "frr": Frr}

log = structlog.get_logger("peeringd")


@dataclass
class Systems:
    """The connections a pass uses, kept open across passes.

    ``calico`` is None when Calico is not observed (``--only calico`` still observes it;
    ``--only adc`` too, read-only, because the nodes it lists are the ADCs' neighbours).
    ADCs missing from ``devices`` are not observed. Only targets in ``scope`` (all when
    None) are changed.
    """

    calico: Calico | None
    devices: Mapping[str, Device] = field(default_factory=dict)
    scope: frozenset[str] | None = None

    @classmethod
    def connect(
        cls,
        loaded: LoadedState,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        only: str | None = None,
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
        return cls(calico=calico, devices=devices, scope=scope)

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
    for attempt in range(_CONFLICT_RETRIES):
        observed, errors = observe(loaded, systems)
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
        return _verify(loaded, systems, planned, applied, errors=errors, held=held, planner=planner)
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
    """Every system's live state; one that fails is missing from it and named in the errors."""
    errors: dict[str, PeeringdError] = {}
    calico = None
    if systems.calico is not None:
        try:
            calico = systems.calico.observe(loaded.state.cluster.nodes.selector)
        except PeeringdError as error:
            errors[CALICO] = error
            log.error("observe failed", target=CALICO, error=str(error), transient=error.transient)
    devices = []
    for name, device in systems.devices.items():
        try:
            devices.append(device.observe())
        except PeeringdError as error:
            errors[name] = error
            log.error("observe failed", target=name, error=str(error), transient=error.transient)
    return live.LiveState(calico=calico, adcs=tuple(devices)), errors


def _apply(
    loaded: LoadedState,
    systems: Systems,
    planned: Plan,
    errors: Mapping[str, PeeringdError],
    revision: str | None,
    *,
    fence: Callable[[str], None] | None,
) -> tuple[tuple[Change, ...], dict[str, PeeringdError], frozenset[str]]:
    """Apply each target's changes in the plan's order; a failing target does not stop the others.

    Returns what was applied, the failures by target, and the BGPPeers held back because
    their ADC is not configured (not observed, or some of its configuration failed; a
    failed save alone does not hold a peer back: the configuration is there).
    """
    applied: list[Change] = []
    failures: dict[str, PeeringdError] = {}
    unconfigured = set(errors)
    held: frozenset[str] = frozenset()
    context = {"state_hash": loaded.sha256, "git_revision": revision}
    for target in planned.targets:
        changes = planned.for_target(target)
        if target == CALICO:
            held = frozenset(
                c.name
                for c in changes
                if isinstance(c, PeerChange) and c.after is not None and c.for_adc in unconfigured
            )
            for name in sorted(held):
                log.warning("BGPPeer waits for its ADC to be configured", target=CALICO, peer=name)
            changes = tuple(c for c in changes if not (isinstance(c, PeerChange) and c.name in held))
        done: list[Change] = []
        try:
            if fence is not None:
                fence(target)
            if target == CALICO:
                assert systems.calico is not None
                cluster = loaded.state.cluster.name
                _record(
                    systems.calico.apply(changes, cluster=cluster, state_hash=loaded.sha256), context, done
                )
            else:
                _record(systems.devices[target].apply(changes), context, done)
        except PeeringdError as error:
            failures[target] = error
            log.error("apply failed", target=target, error=str(error), transient=error.transient)
            if any(c not in done for c in changes if not isinstance(c, SaveChange)):
                unconfigured.add(target)
        applied += done
    return tuple(applied), failures, held


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
        left = [c for c in remaining.for_target(target) if not (isinstance(c, PeerChange) and c.name in held)]
        if left:
            errors[target] = VerificationFailed(
                f"{target}: still differs after applying: {', '.join(report.describe(c) for c in left)}"
            )
            log.error("verification failed", target=target, error=str(errors[target]))
    outcome = Outcome.FAILED if errors else Outcome.CONVERGED
    return Report(outcome, planned, (), applied, tuple(errors.items()), observed)
