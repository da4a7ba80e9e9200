"""Leader election over a coordination.k8s.io/v1 Lease: the decisions, without I/O or clocks.

The semantics are client-go's (``k8s.io/client-go/tools/leaderelection``), which
kube-controller-manager, MetalLB and the NetScaler Ingress Controller rely on. The API
server is the only arbiter: every write of the Lease carries the resourceVersion read,
so of two candidates writing at once one gets a 409 and loses. A candidate may take the
Lease when nobody holds it, or when the record it reads has not changed for the record's
``leaseDurationSeconds`` by the candidate's own monotonic clock: other hosts' wall clocks
(``renewTime``) are never compared with ours, so clock skew between hosts does not matter.
The holder renews every retry period; one that could not renew for the renew deadline
must stop acting, which leaves ``lease - renew deadline`` seconds before any standby
may take over.

Times here are plain numbers from the caller's monotonic clock (seconds) and datetimes
for what is written into the Lease; nothing here reads a clock.
"""

from __future__ import annotations

import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict

__all__ = [
    "MIN_LEASE_SECONDS",
    "Observation",
    "Record",
    "Timing",
    "expires_at",
    "fence_problem",
    "may_take",
    "observe",
    "released",
    "summary",
    "taken",
]

# client-go's defaults (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s), as ratios.
_RENEW_DEADLINE_RATIO: Final = 10 / 15
_RETRY_PERIOD_RATIO: Final = 2 / 15
MIN_LEASE_SECONDS: Final = 3


class Timing(BaseModel):
    """How long a lease lasts, when its holder must give up, how often everyone retries."""

    model_config = ConfigDict(frozen=True)

    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    @classmethod
    def scaled(cls, lease_duration: int) -> Timing:
        """client-go's defaults scaled to ``lease_duration`` seconds (15 gives 15/10/2)."""
        if lease_duration < MIN_LEASE_SECONDS:
            raise ValueError(f"the lease duration must be at least {MIN_LEASE_SECONDS} seconds")
        return cls(
            lease_duration=lease_duration,
            renew_deadline=lease_duration * _RENEW_DEADLINE_RATIO,
            retry_period=lease_duration * _RETRY_PERIOD_RATIO,
        )


class Record(BaseModel):
    """The Lease's spec: who holds it, for how long, since when, how often it changed hands.

    ``holder`` is "" when nobody does (never taken, or released).
    """

    model_config = ConfigDict(frozen=True)

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime.datetime | None = None
    renew_time: datetime.datetime | None = None
    transitions: int = 0


class Observation(BaseModel):
    """The last record a candidate read, and when (its monotonic clock) it first saw it so."""

    model_config = ConfigDict(frozen=True)

    record: Record
    seen_at: float


def observe(previous: Observation | None, record: Record, now: float) -> Observation:
    """What a candidate knows after reading ``record`` at ``now``: a record unchanged since the
    last read keeps the time it was first seen, which is what its expiry counts from."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record=record, seen_at=now)


def expires_at(observation: Observation) -> float:
    """When (on the observer's clock) the observed holder's lease runs out unless renewed."""
    return observation.seen_at + observation.record.lease_duration_seconds


def may_take(observation: Observation | None, identity: str, now: float) -> bool:
    """Whether ``identity`` may write itself into the Lease now: it holds it already, nobody
    does, or the holder has not renewed for its lease duration as seen from here."""
    if observation is None:
        return True
    holder = observation.record.holder
    return holder in ("", identity) or now >= expires_at(observation)


def taken(current: Record | None, identity: str, timing: Timing, now: datetime.datetime) -> Record:
    """The record ``identity`` writes to acquire or renew: a renewal keeps acquireTime and the
    transition count, a change of holder starts a new acquireTime and counts a transition."""
    if current is not None and current.holder == identity:
        return current.model_copy(update={"lease_duration_seconds": timing.lease_duration, "renew_time": now})
    transitions = 0 if current is None else current.transitions + 1
    return Record(
        holder=identity,
        lease_duration_seconds=timing.lease_duration,
        acquire_time=now,
        renew_time=now,
        transitions=transitions,
    )


def released(current: Record, now: datetime.datetime) -> Record:
    """What a holder that stops writes, as client-go's ReleaseOnCancel does: no holder, a
    one-second lease, so that a standby takes over at its next retry instead of waiting."""
    return current.model_copy(
        update={"holder": "", "lease_duration_seconds": 1, "acquire_time": now, "renew_time": now}
    )


def fence_problem(leading: bool, renewed_at: float | None, now: float, timing: Timing) -> str | None:
    """Why a daemon must not start a write session now, from what it knows locally; None when
    it may (the caller still confirms the holder with the API server).

    ``renewed_at`` is when the last successful renewal was sent: past the renew deadline, a
    standby may be seconds from taking over (client-go's holders stop acting there too).
    """
    if not leading or renewed_at is None:
        return "this daemon is the standby"
    age = now - renewed_at
    if age >= timing.renew_deadline:
        return (
            f"the lease was last renewed {age:.1f}s ago, past the renew deadline of"
            f" {timing.renew_deadline:g}s: another daemon may take it over"
        )
    return None


def summary(record: Record, where: str, now: datetime.datetime) -> str:
    """The ``leader:`` line of ``peeringd status``. ``now`` is the reader's wall clock, which
    is compared with the holder's renewTime: good for people, never for deciding."""
    if not record.holder:
        return f"leader: none (lease {where} is free)"
    if record.renew_time is None:
        return f"leader: {record.holder} (lease {where})"
    age = max(0.0, (now - record.renew_time).total_seconds())
    if age > record.lease_duration_seconds:
        return f"leader: none (lease {where}: {record.holder} last renewed it {age:.0f}s ago; it has expired)"
    return f"leader: {record.holder} (lease {where}, renewed {age:.0f}s ago)"
