"""Confirm or revert (``policy.confirm``): a pass that breaks peering undoes itself.

After a pass that applied something, every desired session that was Established before the
pass (as the ADC saw it) and every new one must be Established on both ends, as ``peeringd
status`` joins them, within ``policy.confirm.within``. Sessions a change breaks can still
show Established for a moment after the pass (BIRD and the ADC take a moment to act), so
they must stay up for ``HOLD_SECONDS`` before the pass counts as confirmed early; at the end
of the window, up is enough. Reading calico-node's end creates CalicoNodeStatus objects,
as ``status`` does; they expire soon after the window and are removed like status's.

When the sessions are not up in time, the pass's changes are undone (``core.revert``): a
plan from live, Calico first, then the ADCs, each through ``reconcile`` with the pass's
guards and fence, then checked against live. The desired state is then not applied again
while its content is the same: the daemon remembers its hash in memory, ``apply`` in a
``RevertMemory`` directory (``--force`` applies it anyway).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import structlog

from peeringd.adapters.statefile import LoadedState
from peeringd.core import live, revert, status
from peeringd.core.plan import CALICO, Change, Finding, Plan
from peeringd.errors import PeeringdError, RevertRefused
from peeringd.runtime import reconcile, report, sessions

__all__ = ["HOLD_SECONDS", "RevertMemory", "Verdict", "confirm_or_revert", "default_memory", "wanted"]

HOLD_SECONDS = 5.0
_POLL_SECONDS = 1.0
# How long the CalicoNodeStatus objects the wait creates outlive the window.
_STATUS_GRACE = timedelta(minutes=1)

log = structlog.get_logger("peeringd")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How a pass's confirmation ended: ``down`` empty and no errors is confirmed; otherwise
    what the revert undid, what it left (and why), and what it could not verify."""

    within: int
    down: tuple[status.Row, ...] = ()
    errors: tuple[tuple[str, PeeringdError], ...] = ()
    reverted: tuple[Change, ...] = ()
    left: tuple[Finding, ...] = ()
    unreverted: tuple[Change, ...] = ()
    revert_errors: tuple[tuple[str, PeeringdError], ...] = ()

    @property
    def confirmed(self) -> bool:
        return not self.down and not self.errors

    @property
    def clean(self) -> bool:
        """Reverted completely: every change undone and verified (or nothing to undo)."""
        return not self.unreverted and not self.left and not self.revert_errors

    def reason(self) -> str:
        """Why the pass was not confirmed, in one line."""
        if self.down:
            sessions_down = ", ".join(f"{row.adc}-{row.node} ({row.verdict})" for row in self.down)
            return f"sessions not Established within {self.within}s: {sessions_down}"
        return "sessions could not be read: " + "; ".join(f"{t}: {e}" for t, e in self.errors)

    def text(self) -> str:
        """For a human: confirmed, or what was reverted, left and not verified."""
        if self.confirmed:
            return f"Confirmed: the sessions are Established (policy.confirm within {self.within}s).\n"
        lines = [f"Reverted {len(self.reverted)} changes: {self.reason()}"]
        lines += (f"  reverted {change.target}: {report.describe(change)}" for change in self.reverted)
        lines += (f"  left {finding.target}: {finding.message}" for finding in self.left)
        lines += (f"  NOT reverted {c.target}: {report.describe(c)}" for c in self.unreverted)
        lines += (f"  error {target}: {error}" for target, error in self.revert_errors)
        return "\n".join(lines) + "\n"

    def document(self) -> dict[str, object]:
        """For ``-o json``."""
        return {
            "confirmed": self.confirmed,
            "within": self.within,
            "down": [row.model_dump(mode="json") for row in self.down],
            "reverted": [change.model_dump(mode="json") for change in self.reverted],
            "left": [finding.model_dump(mode="json") for finding in self.left],
            "unreverted": [change.model_dump(mode="json") for change in self.unreverted],
            "errors": [{"target": target, "error": str(error)} for target, error in self.errors],
            "revert_errors": [
                {"target": target, "error": str(error)} for target, error in self.revert_errors
            ],
        }


def wanted(loaded: LoadedState, result: reconcile.Report) -> bool:
    """Whether ``result`` is a pass to confirm: the file asks for it and something changed."""
    return loaded.state.policy.confirm is not None and bool(result.applied) and result.before is not None


def confirm_or_revert(
    loaded: LoadedState,
    systems: reconcile.Systems,
    result: reconcile.Report,
    *,
    revision: str | None = None,
    fence: Callable[[str], None] | None = None,
    stopping: threading.Event | None = None,
) -> Verdict:
    """Wait for the sessions after ``result`` (a pass that ``wanted``), and revert it when they
    do not come. ``stopping`` ends the wait early: then what is seen at that moment decides."""
    confirm = loaded.state.policy.confirm
    assert confirm is not None
    assert result.before is not None
    down, errors = _wait_for_sessions(loaded, systems, result, confirm.within, stopping or threading.Event())
    verdict = Verdict(within=confirm.within, down=down, errors=errors)
    if verdict.confirmed:
        log.info("pass confirmed: the sessions are Established", changes=len(result.applied))
        return verdict
    log.error("pass not confirmed: reverting it", reason=verdict.reason(), changes=len(result.applied))
    return _revert(loaded, systems, result, verdict, revision=revision, fence=fence)


def _wait_for_sessions(
    loaded: LoadedState,
    systems: reconcile.Systems,
    result: reconcile.Report,
    within: int,
    stopping: threading.Event,
) -> tuple[tuple[status.Row, ...], tuple[tuple[str, PeeringdError], ...]]:
    """The sessions still not Established (and read errors) when the window closed, or none
    once they all stayed up for ``HOLD_SECONDS``."""
    before = result.before
    assert before is not None
    established_before = (
        status.adc_sessions(loaded.state, before.calico, before.adcs) if before.calico is not None else {}
    )
    options = sessions.StatusOptions(keep=timedelta(seconds=within) + _STATUS_GRACE)
    deadline = time.monotonic() + within
    up_since: float | None = None
    while True:
        rows, errors = sessions.collect(loaded, systems, options)
        down = revert.unconfirmed(rows, established_before)
        now = time.monotonic()
        if down or errors:
            up_since = None
        else:
            up_since = now if up_since is None else up_since
            if now - up_since >= HOLD_SECONDS:
                return (), ()
        left = deadline - now
        if left <= 0 or stopping.is_set():
            return down, tuple(errors.items())
        log.info("waiting for the sessions to confirm the pass", down=len(down), seconds_left=round(left))
        stopping.wait(min(_POLL_SECONDS, left))


def _revert(
    loaded: LoadedState,
    systems: reconcile.Systems,
    result: reconcile.Report,
    verdict: Verdict,
    *,
    revision: str | None,
    fence: Callable[[str], None] | None,
) -> Verdict:
    """Undo ``result``'s changes: Calico first, then the ADCs, each a pass of its own."""
    before = result.before
    assert before is not None
    applied, cluster = result.applied, loaded.state.cluster.name

    def planner(_: object, observed: live.LiveState) -> Plan:
        return revert.plan(applied, before, observed, cluster)

    targets = frozenset(change.target for change in applied)
    phases = [frozenset({CALICO}) & targets, targets - {CALICO}]
    reverted: list[Change] = []
    planned: list[Change] = []
    left: list[Finding] = []
    errors: list[tuple[str, PeeringdError]] = []
    observed = before
    for scope in filter(None, phases):
        undo = reconcile.reconcile(
            loaded, dataclasses.replace(systems, scope=scope), revision=revision, fence=fence, planner=planner
        )
        reverted += undo.applied
        planned += undo.planned.changes
        left += undo.planned.findings
        errors += undo.errors
        errors += ((r.target, RevertRefused(r.message)) for r in undo.refusals)
        observed = undo.observed
    unreverted = revert.unreverted(Plan(changes=tuple(planned)), observed, cluster)
    outcome = dataclasses.replace(
        verdict,
        reverted=tuple(reverted),
        left=tuple(left),
        unreverted=unreverted,
        revert_errors=tuple(errors),
    )
    log.error(
        "pass reverted",
        reason=verdict.reason(),
        state_hash=loaded.sha256,
        git_revision=revision,
        reverted=[f"{change.target}: {report.describe(change)}" for change in reverted],
        left=[finding.message for finding in left],
        unreverted=[f"{change.target}: {report.describe(change)}" for change in unreverted],
        errors={target: str(error) for target, error in errors},
    )
    return outcome


class RevertMemory:
    """The desired states ``apply`` reverted, by content hash: one small file each, holding
    why, in a directory of its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def recall(self, sha256: str) -> str | None:
        """Why the state with this hash was reverted, or None when it was not."""
        try:
            return (self.directory / sha256).read_text().strip()
        except FileNotFoundError:
            return None

    def remember(self, sha256: str, reason: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / sha256).write_text(reason + "\n")

    def forget(self, sha256: str) -> None:
        (self.directory / sha256).unlink(missing_ok=True)


def default_memory() -> RevertMemory:
    """systemd's StateDirectory when set, else the XDG state directory (~/.local/state)."""
    if state_directory := os.environ.get("STATE_DIRECTORY"):
        return RevertMemory(Path(state_directory.split(":")[0]) / "reverted")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return RevertMemory(Path(base) / "peeringd" / "reverted")
