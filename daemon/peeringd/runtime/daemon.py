"""``peeringd run``: the reconcile pass, every interval and whenever something changed.

apscheduler runs the pass every ``policy.interval`` (with jitter), never two at
once. The state file's directory, the Nodes, and SIGHUP ask for a pass now; a
request that arrives during a pass makes it run again right after. A failed
pass is retried with capped exponential backoff. A state file that stops
loading leaves the last good state in use, loudly. SIGTERM and SIGINT let the
pass in flight finish (an ADC is never left mid-configuration), then exit 0.
With leader election (``runtime.leader``), only the daemon holding the Lease
writes, each write session behind its fence; the standby's passes only read.

The daemon's load on the API server does not grow with the cluster: the Nodes
come from a watched cache (no LIST while the watch is open), a pass that
changes nothing makes three requests and no write, and it creates no
CalicoNodeStatus (``peeringd_bgp_session_up`` is the ADC's view: it sees every
session), but while it confirms a pass that changed something (``policy.confirm``,
``runtime.confirm``), which reads both ends as ``status`` does. A reverted desired
state is remembered in memory by its hash and not applied again until the file changes.
Every few minutes it removes the CalicoNodeStatus objects that
``peeringd status`` created and that expired (one LIST when there are none).
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from peeringd.adapters.calico import Calico
from peeringd.adapters.statefile import LoadedState
from peeringd.core import status
from peeringd.errors import LockHeld, NotLeader, PeeringdError
from peeringd.runtime import confirm, leader, reconcile, sessions
from peeringd.runtime.metrics import Metrics
from peeringd.runtime.notify import Notifier
from peeringd.runtime.source import StateSource
from peeringd.runtime.watch import FileWatcher, NodeCache

__all__ = ["Daemon", "Options", "default_lock_file"]

log = structlog.get_logger("peeringd")

# The C library the interpreter runs on (its own symbols include libc's on Linux).
_LIBC = ctypes.CDLL(None)
_M_ARENA_MAX = -8  # mallopt's parameter for the number of heaps (glibc's malloc.h)
_JOB = "reconcile"
_BACKOFF_START = 2.0
# How often the CalicoNodeStatus objects `peeringd status` left behind are looked at
# (one LIST of peeringd's): they live for minutes, so minutes late is soon enough.
_SWEEP_SECONDS = 300
_CACHE_WAIT_SECONDS = 5.0
# A pass running longer than this is stuck: stop feeding systemd's watchdog.
_STUCK_AFTER = 600.0


def _every(interval: float) -> IntervalTrigger:
    # Jitter spreads the passes of many daemons that started together.
    return IntervalTrigger(seconds=interval, jitter=interval / 10)


def default_lock_file() -> Path:
    """$RUNTIME_DIRECTORY/peeringd.lock under systemd, else /run/peeringd/peeringd.lock."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "/run/peeringd").split(":")[0]
    return Path(runtime) / "peeringd.lock"


@dataclass(frozen=True)
class Options:
    state_file: Path
    kubeconfig: Path | None = None
    context: str | None = None
    metrics_address: tuple[str, int] | None = None
    lock_file: Path = field(default_factory=default_lock_file)
    leader_election: leader.Settings | None = None  # None: this daemon alone writes
    # Seconds between passes instead of policy.interval (``run --interval``: soaks and tests).
    interval: float | None = None


class Daemon:
    """The long-running reconciler of one state file."""

    def __init__(self, options: Options) -> None:
        self._options = options
        self._source = StateSource(options.state_file)
        self._notify = Notifier()
        self._metrics = Metrics()
        self._stopping = threading.Event()
        self._wanted = threading.Event()  # a pass was asked for
        self._state_lock = threading.Lock()
        self._running_since: float | None = None
        self._last_pass_end = time.monotonic()
        self._failures = 0
        self._ready = False
        self._systems: reconcile.Systems | None = None
        self._systems_for: str | None = None  # the connection settings the systems were built for
        self._elector: leader.Elector | None = None
        self._last_status = "starting"
        self._nodes: NodeCache | None = None
        # Desired states (by content hash) whose pass was reverted, and why: not applied again.
        self._reverted: dict[str, str] = {}
        self._scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(1),
                "watchdog": ThreadPoolExecutor(1),
                "housekeeping": ThreadPoolExecutor(1),
            },
            timezone=UTC,
        )

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; the exit code (0 on a clean stop, 1 if it cannot start)."""
        _one_malloc_arena()
        try:
            lock = _lock(self._options.lock_file)
        except (LockHeld, OSError) as error:
            log.error("cannot start", error=str(error))
            return 1
        try:
            if not self._source.reload():
                log.error("cannot start: the state file does not load", error=str(self._source.error))
                return 1
            try:
                self._elector = self._campaign()
            except PeeringdError as error:
                log.error("cannot start", error=str(error))
                return 1
            return self._serve()
        finally:
            os.close(lock)

    def _campaign(self) -> leader.Elector | None:
        """With leader election, campaign for the Lease before the first pass, so that it knows
        whether it may write; a Lease that cannot work (403, no namespace) stops the start."""
        settings = self._options.leader_election
        self._metrics.leader.set(1 if settings is None else 0)
        if settings is None:
            return None
        elector = leader.Elector.connect(
            settings, self._options.kubeconfig, self._options.context, self._leadership_changed
        )
        elector.start()
        return elector

    def _leadership_changed(self, leading: bool) -> None:
        self._metrics.leader.set(1 if leading else 0)
        if self._stopping.is_set():
            return
        self._status(self._last_status)
        if leading and self._scheduler.running:  # else the first pass is yet to come
            self.ask_for_pass("became the leader")

    def _serve(self) -> int:
        loaded = self._current()
        self._metrics.desired_state(loaded.sha256, self._source.revision)
        stop_metrics = self._start_metrics()
        files = FileWatcher(self._options.state_file, self._file_changed)
        files.start()
        self._install_signals()
        self._scheduler.add_job(
            self._pass,
            _every(self._interval()),
            id=_JOB,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.add_job(
            self._sweep,
            IntervalTrigger(seconds=_SWEEP_SECONDS),
            executor="housekeeping",
            id="sweep",
            next_run_time=datetime.now(UTC) + timedelta(seconds=10),
        )
        if (every := self._notify.watchdog_interval()) is not None:
            self._scheduler.add_job(
                self._feed_watchdog, IntervalTrigger(seconds=every), executor="watchdog", id="watchdog"
            )
        self._scheduler.start()
        log.info("started", state_file=str(self._options.state_file), interval=self._interval())
        self._stopping.wait()
        log.info("stopping: letting the pass in flight finish")
        self._notify.send(stopping="1", status="stopping")
        files.stop()
        self._scheduler.shutdown(wait=True)
        if self._elector is not None:
            self._elector.stop()  # no pass runs any more: the Lease can go to the standby
        self._close_systems()
        if stop_metrics is not None:
            stop_metrics()
        log.info("stopped")
        return 0

    def _schedule(self, interval: float) -> None:
        self._scheduler.reschedule_job(_JOB, trigger=_every(interval))
        log.info("interval changed", interval=interval)

    def _interval(self) -> float:
        """Seconds between passes: ``run --interval`` when given, else the file's policy.interval."""
        return self._options.interval or self._current().state.policy.interval

    def _current(self) -> LoadedState:
        loaded = self._source.last_good
        assert loaded is not None, "the daemon starts only with a valid state file"
        return loaded

    def ask_for_pass(self, reason: str) -> None:
        """Run a pass as soon as possible; during a pass, right after it."""
        with self._state_lock:
            self._wanted.set()
            running = self._running_since is not None
        log.info("pass requested", reason=reason)
        if not running and not self._stopping.is_set():
            self._scheduler.modify_job(_JOB, next_run_time=datetime.now(UTC))

    def _pass(self) -> None:
        while not self._stopping.is_set():
            with self._state_lock:
                self._wanted.clear()
                self._running_since = time.monotonic()
            try:
                self._one_pass()
            finally:
                _release_memory()
                with self._state_lock:
                    self._running_since = None
                    self._last_pass_end = time.monotonic()
                    again = self._wanted.is_set()
            if not again:
                return

    def _one_pass(self) -> None:
        loaded = self._current()
        started = time.monotonic()
        try:
            systems = self._systems_for_state(loaded)
        except PeeringdError as error:
            log.error("pass failed", error=str(error))
            self._after_failure(str(error))
            return
        elector = self._elector
        leading = elector is None or elector.leading
        fence = elector.fence if elector is not None else None
        result = reconcile.reconcile(
            loaded,
            systems,
            apply=leading and loaded.sha256 not in self._reverted,
            revision=self._source.revision,
            fence=fence,
        )
        verdict = None
        if confirm.wanted(loaded, result):
            verdict = confirm.confirm_or_revert(
                loaded, systems, result, revision=self._source.revision, fence=fence, stopping=self._stopping
            )
        seconds = time.monotonic() - started
        self._metrics.record(result, seconds)
        if (calico := result.observed.calico) is not None:
            self._metrics.sessions(status.adc_session_states(loaded.state, calico, result.observed.adcs))
        log.info(
            "pass done",
            seconds=round(seconds, 3),
            outcome=str(result.outcome),
            changes=len(result.planned.changes),
            applied=len(result.applied),
            errors={target: str(error) for target, error in result.errors},
        )
        if verdict is not None and not verdict.confirmed:
            self._reverted[loaded.sha256] = verdict.reason()
            self._metrics.reverts.inc()
            self._status(
                f"reverted {len(verdict.reverted)} changes"
                f"{'' if verdict.clean else ' (not all: see the log)'}: {verdict.reason()}; "
                f"state {loaded.sha256[:12]} is not applied again until the file changes"
            )
        elif (reason := self._reverted.get(loaded.sha256)) is not None and leading:
            self._status(
                f"not applying state {loaded.sha256[:12]}, reverted before ({reason}); {result.outcome}"
            )
        elif result.outcome == reconcile.Outcome.REFUSED:
            # Refused until the file changes: the next interval is soon enough to say so again.
            self._status("refused: " + "; ".join(r.message for r in result.refusals))
        elif result.outcome == reconcile.Outcome.FAILED:
            reasons = "; ".join(f"{t}: {e}" for t, e in result.errors) or "see the plan's errors"
            if result.transient and result.errors:
                self._after_failure(reasons)
            else:
                self._status(f"failing until a human acts: {reasons}")
        else:
            self._failures = 0
            self._status(
                f"{result.outcome}: {len(loaded.state.adcs)} ADCs, {len(result.applied)} changes applied"
            )
        if not self._ready:
            self._ready = True
            self._notify.send(ready="1")
            # What lives now (libraries, connections, the node cache) lives as long as the
            # daemon: the cyclic collector need not walk it again. Its full collections in the
            # middle of a pass doubled the time to plan 5,000 nodes.
            gc.collect()
            gc.freeze()

    def _may_write(self, target: str) -> bool:
        """The fence, for writes outside the pass (removing expired CalicoNodeStatus objects)."""
        if self._elector is None:
            return True
        try:
            self._elector.fence(target)
        except NotLeader:
            return False
        return True

    def _systems_for_state(self, loaded: LoadedState) -> reconcile.Systems:
        """The connections, rebuilt only when what they connect to or with changed: a login to
        an ADC takes seconds, and most edits change only what is configured."""
        key = _connection_key(loaded)
        if self._systems is None or self._systems_for != key:
            self._close_systems()
            context = self._options.context or loaded.state.cluster.kubeconfig_context
            self._nodes = self._start_node_cache(context)
            self._systems = reconcile.Systems.connect(
                loaded, kubeconfig=self._options.kubeconfig, context=context, nodes=self._nodes
            )
            self._systems_for = key
        return self._systems

    def _close_systems(self) -> None:
        if self._nodes is not None:
            self._nodes.stop()
            self._nodes = None
        if self._systems is not None:
            self._systems.close()
            self._systems = None

    def _start_node_cache(self, context: str | None) -> NodeCache | None:
        """The watched Nodes, on a connection of their own (a watch holds one open)."""
        try:
            calico = Calico.connect(self._options.kubeconfig, context)
        except PeeringdError as error:
            log.error("no node watch", error=str(error))
            return None
        cache = NodeCache(calico, lambda: self._current().state.cluster.nodes.selector, self.ask_for_pass)
        cache.start()
        # The first pass reads the cache rather than listing every Node a second time.
        cache.wait(_CACHE_WAIT_SECONDS)
        return cache

    def _sweep(self) -> None:
        """Remove the CalicoNodeStatus objects ``peeringd status`` made whose retention ended or
        whose node is gone (and those an earlier peeringd made for every node)."""
        systems, cache = self._systems, self._nodes
        if systems is None or systems.calico is None or not self._may_write("caliconodestatuses"):
            return
        cluster = self._current().state.cluster
        known = cache.nodes(cluster.nodes.selector) if cache is not None else None
        names = None if known is None else {node.name for node in known}
        try:
            sessions.remove_expired(systems.calico, cluster.name, names)
        except PeeringdError as error:
            log.warning("expired CalicoNodeStatus objects not removed", error=str(error))

    def _after_failure(self, reason: str) -> None:
        self._failures += 1
        interval = self._interval()
        delay = min(_BACKOFF_START * 2 ** (self._failures - 1), float(interval))
        delay *= random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not cryptography
        self._status(f"failing ({self._failures} in a row, retry in {delay:.0f}s): {reason}")
        if not self._stopping.is_set():
            self._scheduler.modify_job(_JOB, next_run_time=datetime.now(UTC) + timedelta(seconds=delay))

    def _status(self, text: str) -> None:
        self._last_status = text
        if self._source.stale:
            text = f"state file stale, using the last good one: {self._source.error}; {text}"
        if self._elector is not None:
            text = f"{self._elector.describe()}: {text}"
        self._notify.send(status=text[:500])

    def _file_changed(self) -> None:
        interval = self._interval()
        if self._source.reload():
            loaded = self._current()
            if self._interval() != interval:
                self._schedule(self._interval())
            self._metrics.stale.set(0)
            self._metrics.desired_state(loaded.sha256, self._source.revision)
            log.info("state file changed", sha256=loaded.sha256, git_revision=self._source.revision)
            self.ask_for_pass("state file changed")
        elif self._source.stale:
            self._metrics.stale.set(1)
            log.error("state file does not load; keeping the last good state", error=str(self._source.error))
            self._status("stale")
        else:
            self._metrics.stale.set(0)

    def _reload(self) -> None:
        # RELOADING=1 ... READY=1 frames the re-read, so that systemd's reload (Type=notify-reload)
        # ends when the new state is in use. Before the first pass READY=1 would say "started".
        framed = self._ready
        if framed:
            self._notify.reloading()
        self._file_changed()
        if framed:
            self._notify.send(ready="1")
        self.ask_for_pass("SIGHUP")

    def _start_metrics(self) -> Callable[[], None] | None:
        if self._options.metrics_address is None:
            return None
        host, port = self._options.metrics_address
        stop = self._metrics.serve(host, port, self._health)
        log.info("serving metrics", address=f"{host}:{port}")
        return stop

    def _health(self) -> str | None:
        """None when healthy, else why not."""
        with self._state_lock:
            running_since, last_end = self._running_since, self._last_pass_end
        now = time.monotonic()
        confirming = self._current().state.policy.confirm
        stuck_after = _STUCK_AFTER + (confirming.within if confirming is not None else 0)
        if running_since is not None and now - running_since > stuck_after:
            return f"a pass has been running for {now - running_since:.0f}s"
        interval = self._interval()
        if running_since is None and now - last_end > 3 * interval + _STUCK_AFTER:
            return f"no pass for {now - last_end:.0f}s"
        return None

    def _feed_watchdog(self) -> None:
        if self._health() is None:
            self._notify.send(watchdog="1")

    def _install_signals(self) -> None:
        def stop(signum: int, _: FrameType | None) -> None:
            log.info("signal", signal=signal.Signals(signum).name)
            self._stopping.set()

        def hup(_: int, __: FrameType | None) -> None:
            threading.Thread(target=self._reload, name="reload", daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)


def _one_malloc_arena() -> None:
    """Let the daemon's threads share one heap. glibc gives a thread that allocates while
    another does a heap of its own (up to eight a core), and what a pass freed stays in it:
    at 5,000 nodes the watch, the SSH transport and the pass threads held 2 to 3 MB that
    way. Its threads allocate holding the GIL, one at a time anyway, so sharing costs
    nothing. glibc only; elsewhere nothing happens."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)


def _release_memory() -> None:
    """Hand the heap a pass freed back to the system. A pass over thousands of nodes briefly
    holds tens of MB (device output, parsed configs, the plan); without this, the idle
    daemon keeps that peak as its size. glibc only; elsewhere nothing happens."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _connection_key(loaded: LoadedState) -> str:
    """What the connections depend on: the kubeconfig context and each device's platform and SSH."""
    state = loaded.state
    devices = [adc.model_dump_json(include={"name", "platform", "ssh"}) for adc in state.adcs]
    return "\n".join([str(state.cluster.kubeconfig_context), *devices])


def _lock(path: Path) -> int:
    """An flock on ``path``, released by the kernel when the process ends (never stale)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise LockHeld(f"another peeringd (pid {holder}) holds {path}") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return descriptor
