"""``peeringd run --leader-elect``: of two daemons, only the one holding a Lease writes.

Each daemon campaigns for one coordination.k8s.io/v1 Lease (default ``kube-system/peeringd``)
under its identity (``HOST_PID_RANDOM``, see ``adapters.kubeclient.identity``). The holder
renews it every retry period and applies; the other is the standby: it runs every pass
read-only (its API and SSH connections stay warm, its passes count what the leader will change)
and takes the Lease over once the holder has not renewed it for the lease duration (default
15 s), even when the holder died by SIGKILL. A daemon that stops cleanly releases the Lease,
so the standby takes over at its next retry.

Fencing: before each write session (each ADC, then Calico, then the CalicoNodeStatus objects)
the daemon checks that it holds the Lease and is not about to lose it: its last renewal was
sent less than the renew deadline ago (client-go's holders stop acting past it), and the
API server still names it as the holder. Otherwise the session is not started, and the log
says why ("fenced: not writing"). A session that has started runs to its end (an ADC is
never left half-configured): the margin is ``lease duration - renew deadline`` (5 s by
default), plus the time the standby needs to notice.

Why not the kubernetes client's ``kubernetes.leaderelection`` (read in kubernetes 37.0.2):
it implements the same algorithm, but
- ``LeaderElection.run()`` cannot be stopped: ``acquire()`` and ``renew_loop()`` loop with
  ``time.sleep`` for ever, so a stopping daemon can neither stop campaigning nor release
  the Lease (client-go's ReleaseOnCancel); the standby would wait a lease duration after
  every ``systemctl stop``;
- its ``LeaseLock`` talks through the process-wide default client configuration (not
  ``--kubeconfig``/``--context``) without request timeouts: a renewal that hangs hangs the
  loop, whose renew deadline is checked only between attempts;
- it decides expiry and the renew deadline with ``time.time()``, the wall clock: a clock
  step makes a standby take over early or a holder hold on late (client-go is monotonic);
- its callbacks cannot fence: ``onstopped_leading`` runs only once ``renew_loop`` gives up,
  up to the renew deadline after another daemon took over (never while a request hangs),
  and its state is attributes another thread writes without a lock;
- it never counts ``leaseTransitions``, ``Config`` calls ``sys.exit()`` on bad settings, and
  once in a million renewals it writes a whole-second time, which the API server refuses
  (see ``adapters.lease``).
So this is a thin wrapper with client-go's semantics (``core.election``), no consensus of
its own: the API server's resourceVersion check decides every race.

Threads: one, "leader-election", campaigning and renewing; ``fence`` runs on the caller's.
Clocks: ``time.monotonic`` decides everything; the wall clock only dates what is written
into the Lease (acquireTime, renewTime), which no decision reads.
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from peeringd.adapters import kubeclient
from peeringd.adapters.lease import LeaseClient
from peeringd.core import election
from peeringd.errors import LeaseConflict, LeaseError, NotLeader, PeeringdError

__all__ = ["DEFAULT_LEASE_NAME", "DEFAULT_NAMESPACE", "Elector", "Settings", "describe_lease"]

# Where kube-controller-manager keeps its Lease, and where `peeringd rbac` puts the account:
# it exists in every cluster, whether peeringd runs in it or on a management host.
DEFAULT_NAMESPACE: Final = "kube-system"
DEFAULT_LEASE_NAME: Final = "peeringd"
# Standbys retry at a random point of up to a fifth of the retry period after it, so that
# several do not hit the API server together (client-go's JitterFactor is larger, 1.2).
_JITTER: Final = 0.2
_JOIN_TIMEOUT: Final = 30.0

log = structlog.get_logger("peeringd")


@dataclass(frozen=True)
class Settings:
    """Which Lease, and how long it lasts (the renew deadline and retry period follow)."""

    namespace: str = DEFAULT_NAMESPACE
    name: str = DEFAULT_LEASE_NAME
    lease_duration: int = 15


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def describe_lease(kubeconfig: Path | None, context: str | None, namespace: str, name: str) -> str | None:
    """The ``leader:`` line of ``peeringd status``: who holds the Lease, as the API server has
    it; None when there is no Lease (no daemon runs with --leader-elect there)."""
    try:
        lease = LeaseClient.connect(kubeconfig, context, namespace, name)
    except PeeringdError as error:
        return f"leader: unknown ({error})"
    try:
        found = lease.read()
    except LeaseError as error:
        return f"leader: unknown ({error})"
    finally:
        lease.close()
    return None if found is None else election.summary(found[0], lease.where, _utc_now())


class Elector:
    """Campaigns for the Lease on a thread of its own; says whether this daemon leads, and
    fences each write session.

    ``on_change(leading)`` is called on every change of role, and with False when a standby
    sees another leader (its status line names the leader), from the election thread or from
    ``fence``'s caller, one call at a time.
    """

    def __init__(
        self,
        lease: LeaseClient,
        timing: election.Timing,
        identity: str,
        on_change: Callable[[bool], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        self.identity = identity
        self._lease = lease
        self._timing = timing
        self._on_change = on_change
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()  # the state below
        self._transitions = threading.Lock()  # one change of role, and its callback, at a time
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False
        self._renewed_at: float | None = None
        self._observed: election.Observation | None = None
        self._last_problem: str | None = None

    @classmethod
    def connect(
        cls,
        settings: Settings,
        kubeconfig: Path | None,
        context: str | None,
        on_change: Callable[[bool], None] | None = None,
    ) -> Elector:
        """An elector for ``settings``' Lease, connected as kubectl would connect."""
        timing = election.Timing.scaled(settings.lease_duration)
        # A request may take half the renew deadline: a renewal that hangs cannot use it up.
        read = timing.renew_deadline / 2
        lease = LeaseClient.connect(
            kubeconfig, context, settings.namespace, settings.name, timeout=(min(5.0, read), read)
        )
        return cls(lease, timing, kubeclient.identity(), on_change)

    @property
    def lease(self) -> str:
        """``namespace/name`` of the Lease."""
        return self._lease.where

    @property
    def leading(self) -> bool:
        with self._lock:
            return self._leading

    @property
    def leader(self) -> str | None:
        """Who holds the Lease as last seen from here; None when nobody does."""
        with self._lock:
            if self._leading:
                return self.identity
            return self._observed.record.holder or None if self._observed is not None else None

    def describe(self) -> str:
        """This daemon's role, for the systemd status line."""
        if self.leading:
            return f"leader (lease {self.lease})"
        leader = self.leader
        return f"standby, leader is {leader}" if leader else "standby, no leader yet"

    def start(self) -> None:
        """Campaign once now, then on the election thread. A problem that retrying will not
        solve (403, a missing namespace) raises LeaseError: the daemon cannot start."""
        log.info(
            "leader election",
            identity=self.identity,
            lease=self.lease,
            lease_duration=self._timing.lease_duration,
            renew_deadline=round(self._timing.renew_deadline, 3),
            retry_period=round(self._timing.retry_period, 3),
        )
        problem = self.attempt()
        if problem is not None and not problem.transient:
            raise problem
        self._thread = threading.Thread(target=self._campaign, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning and release the Lease if held. Call it only once no write session
        is running or can start (the daemon's scheduler has shut down)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT)
        if self.leading:
            self._release()
        self._change(False, "stopping")
        self._lease.close()

    def fence(self, target: str) -> None:
        """Return when this daemon may start writing to ``target``; else raise NotLeader.

        Local check first (leading, renewed within the renew deadline), then the API server's
        word that the Lease still names this daemon.
        """
        with self._lock:
            leading, renewed_at = self._leading, self._renewed_at
        problem = election.fence_problem(leading, renewed_at, self._clock(), self._timing)
        lost = problem is not None and leading
        if problem is None:
            try:
                found = self._lease.read()
            except LeaseError as error:
                problem = f"cannot confirm the lease {self.lease}: {error}"
            else:
                holder = found[0].holder if found is not None else ""
                if holder != self.identity:
                    problem = f"the lease {self.lease} is held by {holder or 'nobody'}"
                    lost = True
        if problem is None:
            return
        log.error("fenced: not writing", target=target, reason=problem, identity=self.identity)
        if lost:
            self._change(False, problem)
        raise NotLeader(f"fenced: {problem}; this daemon writes nothing")

    # The campaign

    def _campaign(self) -> None:
        while not self._stopping.wait(self._pause()):
            try:
                self.attempt()
            except Exception:
                # A thread that died would stop renewing unseen (e.g. over a Lease someone wrote
                # that the client's models refuse). The fence's own clock stops writes once
                # renewals stop anyway; keep trying, loudly.
                log.exception("leader election failed", lease=self.lease, identity=self.identity)

    def _pause(self) -> float:
        """A retry period for the holder; for a standby a jittered one, or less when the
        holder's lease runs out sooner (a dead holder is replaced at expiry, not after)."""
        with self._lock:
            leading, observed = self._leading, self._observed
        if leading:
            return self._timing.retry_period
        pause = self._timing.retry_period * (1 + random.uniform(0, _JITTER))  # noqa: S311 - not cryptography
        if observed is not None and observed.record.holder not in ("", self.identity):
            pause = min(pause, election.expires_at(observed) - self._clock())
        return max(0.0, pause)

    def attempt(self) -> LeaseError | None:
        """Acquire or renew once, as the election thread does every retry period, and change
        role if that changed it. Returns the Lease's problem, if any (a lost race is none)."""
        started = self._clock()
        problem: LeaseError | None = None
        try:
            won = self._acquire_or_renew(started)
        except LeaseConflict:
            won = False  # another daemon wrote first: it leads, we learn who at the next read
        except LeaseError as error:
            won, problem = False, error
        self._report(problem)
        with self._lock:
            if won:
                self._renewed_at = started
            leading, renewed_at = self._leading, self._renewed_at
            holder = self._observed.record.holder if self._observed is not None else ""
        if won:
            self._change(True, "acquired the lease")
        elif leading and holder not in ("", self.identity):
            self._change(False, f"the lease is held by {holder}")
        elif leading and (renewed_at is None or self._clock() - renewed_at >= self._timing.renew_deadline):
            self._change(False, f"could not renew the lease within {self._timing.renew_deadline:g}s")
        return problem

    def _acquire_or_renew(self, now: float) -> bool:
        """client-go's tryAcquireOrRenew: read; create when absent; write ourselves in when
        we hold it, nobody does, or the holder let it expire. False when someone else holds it."""
        found = self._lease.read()
        if found is None:
            record = election.taken(None, self.identity, self._timing, self._wall())
            self._lease.create(record)
            self._observe(election.Observation(record=record, seen_at=now))
            return True
        current, resource_version = found
        with self._lock:
            previous = self._observed
        observation = election.observe(previous, current, now)
        self._observe(observation)
        if not election.may_take(observation, self.identity, now):
            return False
        record = election.taken(current, self.identity, self._timing, self._wall())
        self._lease.update(record, resource_version)
        self._observe(election.Observation(record=record, seen_at=now))
        return True

    def _observe(self, observation: election.Observation) -> None:
        with self._lock:
            before = self._observed.record.holder if self._observed is not None else None
            self._observed = observation
            leading = self._leading
        holder = observation.record.holder
        if holder in (before, self.identity) or leading:
            return
        if holder:
            log.info("leader seen", leader=holder, lease=self.lease, identity=self.identity)
        else:
            log.info("the lease is free", lease=self.lease, identity=self.identity)
        with self._transitions:
            if self._on_change is not None and not self.leading:
                self._on_change(False)

    def _release(self) -> None:
        """Hand the Lease back (client-go's ReleaseOnCancel), if it still names us."""
        try:
            found = self._lease.read()
            if found is None or found[0].holder != self.identity:
                return
            self._lease.update(election.released(found[0], self._wall()), found[1])
        except LeaseError as error:
            log.warning(
                "could not release the lease; the standby takes over when it expires", error=str(error)
            )
            return
        log.info("released the lease", lease=self.lease, identity=self.identity)

    def _report(self, problem: LeaseError | None) -> None:
        """Log a problem with the Lease once, and once when it is gone: not every retry period."""
        text = None if problem is None else str(problem)
        if text == self._last_problem:
            return
        self._last_problem = text
        if problem is None:
            log.info("lease reachable again", lease=self.lease)
        else:
            log.warning("lease problem", lease=self.lease, error=text, transient=problem.transient)

    def _change(self, leading: bool, reason: str) -> None:
        with self._transitions:
            with self._lock:
                if self._leading == leading:
                    return
                self._leading = leading
                if not leading:
                    self._renewed_at = None
            if leading:
                log.info("became the leader", identity=self.identity, lease=self.lease, reason=reason)
            elif reason == "stopping":
                log.info("stepped down", identity=self.identity, lease=self.lease, reason=reason)
            else:
                log.error(
                    "lost the lease: writing nothing", identity=self.identity, lease=self.lease, reason=reason
                )
            if self._on_change is not None:
                self._on_change(leading)
