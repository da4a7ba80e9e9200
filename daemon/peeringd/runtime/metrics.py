"""Prometheus metrics and the health endpoint, served on an opt-in address.

``/metrics`` is Prometheus' text format; ``/healthz`` answers 200 while passes
keep happening and 503 with the reason when they stop (a pass stuck for too
long, or none for three intervals).

``peeringd_bgp_session_up`` has a series per desired session (5,000 nodes, 5,000
series an ADC): its text is written once a pass, not at each scrape, which
would cost 80 ms of CPU every scrape and a client object per series.
"""

from __future__ import annotations

import io
import threading
import wsgiref.simple_server
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, ThreadingWSGIServer

from peeringd.core.plan import CALICO
from peeringd.runtime.reconcile import Report

__all__ = ["Metrics"]

Health = Callable[[], str | None]


class Metrics:
    """The daemon's metrics in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_resident_memory_bytes, process_open_fds, CPU seconds: what a leak shows in.
        ProcessCollector(registry=self.registry)
        self.passes = Counter(
            "peeringd_reconcile", "Reconcile passes by outcome.", ["result"], registry=self.registry
        )
        self.duration = Histogram(
            "peeringd_reconcile_duration_seconds",
            "Wall time of a reconcile pass.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.changes = Counter(
            "peeringd_changes_applied",
            "Changes applied, by side and action.",
            ["side", "action"],
            registry=self.registry,
        )
        self.drift = Gauge(
            "peeringd_drift_items",
            "Changes the last pass found between the file and live.",
            registry=self.registry,
        )
        self.stale = Gauge(
            "peeringd_config_stale",
            "1 when the state file on disk does not load and the last good state is in use.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "peeringd_last_success_timestamp_seconds",
            "When a pass last ended converged (Unix time).",
            registry=self.registry,
        )
        self.state_info = Gauge(
            "peeringd_desired_state_info",
            "The desired state in use.",
            ["sha256", "git_revision"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "peeringd_leader",
            "1 when this daemon may write: it holds the leader-election Lease (or runs without one).",
            registry=self.registry,
        )
        self.reverts = Counter(
            "peeringd_reverts",
            "Passes undone because the BGP sessions did not come back (policy.confirm).",
            registry=self.registry,
        )
        self._session_text = _sessions_text(())
        for result in ("converged", "drift", "refused", "failed"):
            self.passes.labels(result)

    def record(self, report: Report, seconds: float) -> None:
        self.passes.labels(str(report.outcome)).inc()
        self.duration.observe(seconds)
        for change in report.applied:
            side = CALICO if change.target == CALICO else "adc"
            self.changes.labels(side, str(change.action)).inc()
        self.drift.set(len(report.planned.changes) - len(report.applied))
        if report.outcome == "converged":
            self.last_success.set_to_current_time()

    def sessions(self, states: Iterable[tuple[str, str, str, bool]]) -> None:
        """One series per desired session, from (adc, neighbor, node, up); those no longer
        desired go. Only the text is kept: the sessions themselves would be three objects
        for each of its lines, kept between passes."""
        self._session_text = _sessions_text(states)

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.registry) + self._session_text

    def desired_state(self, sha256: str, revision: str | None) -> None:
        self.state_info.clear()
        self.state_info.labels(sha256, revision or "").set(1)

    def serve(self, host: str, port: int, health: Health) -> Callable[[], None]:
        """Serve /metrics and /healthz on ``host:port`` in a thread; returns the stop function."""

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                problem = health()
                status = "503 Service Unavailable" if problem else "200 OK"
                start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
                return [(problem or "ok").encode() + b"\n"]
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [self.exposition()]

        server = wsgiref.simple_server.make_server(
            host, port, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
        )
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()

        return stop


def _sessions_text(states: Iterable[tuple[str, str, str, bool]]) -> bytes:
    """peeringd_bgp_session_up, a series per (adc, neighbor, node), as Prometheus' text format,
    written a line at a time: 5,000 lines held at once would be the largest part of a pass."""
    name = "peeringd_bgp_session_up"
    text = io.BytesIO()
    text.write(
        f"# HELP {name} 1 when the ADC reports the session with the node Established.\n"
        f"# TYPE {name} gauge\n".encode()
    )
    for adc, neighbor, node, up in states:
        labels = f'adc="{_escaped(adc)}",neighbor="{_escaped(neighbor)}",node="{_escaped(node)}"'
        text.write(f"{name}{{{labels}}} {1.0 if up else 0.0}\n".encode())
    return text.getvalue()


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds would drown the daemon's own events."""

    def log_message(self, format: str, *args: Any) -> None:
        return
