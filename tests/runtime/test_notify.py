"""The notify protocol as systemd reads it, from a real ``peeringd run`` and a socket in its place."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from peeringd.lab.nssim import NetScalerSimulator
from peeringd.runtime.notify import Notifier
from tests.bgplab.poll import until
from tests.conftest import Cluster
from tests.runtime import daemon_harness
from tests.runtime.daemon_harness import DaemonProcess, NotifySocket


def _now_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    socket = NotifySocket(tmp_path / "notify.sock")
    yield socket
    socket.close()


@pytest.fixture
def adc(tmp_path: Path) -> Iterator[NetScalerSimulator]:
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as simulator:
        yield simulator


@pytest.fixture
def started(
    cluster: Cluster, adc: NetScalerSimulator, notify: NotifySocket, tmp_path: Path
) -> Iterator[Callable[[], DaemonProcess]]:
    """Start the daemon under the notify socket, against the API server and the simulator."""
    secrets = daemon_harness.write_secrets(adc, tmp_path / "secrets")
    state_file = tmp_path / "peering.yaml"
    state_file.write_text(daemon_harness.state_text(adc, secrets))
    daemons = daemon_harness.daemons(tmp_path)
    start = next(daemons)
    yield lambda: start(state_file, cluster.kubeconfig, environment={"NOTIFY_SOCKET": str(notify.path)})
    next(daemons, None)


def test_reloading_carries_the_monotonic_time(notify: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC on CLOCK_MONOTONIC, which Type=notify-reload requires."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    before = _now_usec()
    Notifier().reloading()
    after = _now_usec()

    (message,) = until(notify.received, lambda m: len(m) == 1, timeout=5, what="one message")
    assert message["RELOADING"] == "1"
    assert sorted(message) == ["MONOTONIC_USEC", "RELOADING"]
    assert before <= int(message["MONOTONIC_USEC"]) <= after


def test_a_socket_it_cannot_write_to_is_reported_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing send (here: nothing at the path) warns once for a run of failures, like sd_notify
    it never raises: a status line must not stop a pass or a clean exit."""
    missing = tmp_path / "gone.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(missing))
    notifier = Notifier()
    with structlog.testing.capture_logs() as logs:
        notifier.send(status="converged")
        notifier.send(watchdog="1")
        notifier.send(stopping="1")

    assert [(e["event"], e["socket"]) for e in logs] == [("cannot notify the service manager", str(missing))]


def test_sighup_is_framed_by_reloading_and_ready(
    started: Callable[[], DaemonProcess], notify: NotifySocket
) -> None:
    """After SIGHUP: RELOADING=1 timed after the signal, then READY=1 once the file was re-read."""
    daemon = started()
    until(notify.received, lambda m: {"READY": "1"} in m, timeout=30, what="READY=1")
    seen = len(notify.received())
    signalled = _now_usec()
    daemon.signal(signal.SIGHUP)

    after = until(
        lambda: notify.received()[seen:], lambda m: {"READY": "1"} in m, timeout=20, what="READY=1 again"
    )
    reloading = [m for m in after if "RELOADING" in m]
    assert [m for m in after if "RELOADING" in m or "READY" in m] == [*reloading, {"READY": "1"}]
    assert len(reloading) == 1
    assert int(reloading[0]["MONOTONIC_USEC"]) >= signalled
    assert daemon.stop() == 0


def test_sighup_before_the_first_pass_does_not_say_ready(
    started: Callable[[], DaemonProcess], notify: NotifySocket, adc: NetScalerSimulator
) -> None:
    """READY=1 means the first pass is done, even when a SIGHUP arrives while it runs."""
    adc.delay_replies(5.0, pattern="show ns feature", times=1)
    daemon = started()
    # The first pass is waiting on the delayed reply: the SIGHUP lands inside it.
    until(adc.journal, lambda lines: any(line.fault for line in lines), timeout=30, what="the delayed line")
    daemon.signal(signal.SIGHUP)
    # The SIGHUP's request makes the pass run again right after: two passes, then every message is in.
    daemon.wait_for_event("pass done", count=2, timeout=60)

    framing = [m for m in notify.received() if "READY" in m or "RELOADING" in m]
    assert [e["reason"] for e in daemon.events("pass requested")] == ["SIGHUP"]
    assert framing == [{"READY": "1"}]
    assert daemon.stop() == 0
