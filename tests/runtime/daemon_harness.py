"""A real ``peeringd run`` process against an API server and a NetScaler simulator, for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peeringd.lab.nssim import NetScalerSimulator, write_known_hosts
from tests.bgplab.poll import until

STATE = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster:
  name: prod-1
  podCIDR: 192.168.0.0/16
  asNumber: 64512
adcs:
  - name: adc-1
    asNumber: 500
    peerIP: 10.0.0.100
    maxPaths: {{ebgp: {ebgp}, ibgp: 8}}
    ssh: {{host: 127.0.0.1, port: {port}, username: nsroot, passwordFile: {secrets}/adc-1.password, knownHostsFile: {secrets}/known_hosts}}
policy:
  interval: {interval}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def state_text(simulator: NetScalerSimulator, secrets: Path, *, ebgp: int = 8, interval: str = "1h") -> str:
    return STATE.format(port=simulator.port, secrets=secrets, ebgp=ebgp, interval=interval)


def write_secrets(simulator: NetScalerSimulator, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "adc-1.password").write_text(simulator.password + "\n")
    write_known_hosts(folder / "known_hosts", [simulator])
    return folder


class NotifySocket:
    """A stand-in for systemd's notify socket: collects what the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def received(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def close(self) -> None:
        self._sock.close()


@dataclass
class DaemonProcess:
    """``peeringd run`` as systemd would start it; its JSON log lines are kept in ``log``.

    ``pid`` and ``wait_for_event`` serve the tests and the daemon's benchmark alike;
    ``arguments`` are added to ``peeringd run``'s."""

    state_file: Path
    kubeconfig: Path
    workdir: Path
    environment: dict[str, str] = field(default_factory=dict)
    arguments: tuple[str, ...] = ()
    serve_metrics: bool = True
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "daemon.log"

    def start(self) -> DaemonProcess:
        command = [
            str(Path(sys.executable).parent / "peeringd"),
            "run",
            "-f",
            str(self.state_file),
            "--kubeconfig",
            str(self.kubeconfig),
            "--lock-file",
            str(self.workdir / "peeringd.lock"),
        ]
        if self.serve_metrics:
            command += ["--metrics-address", f"127.0.0.1:{self.metrics_port}"]
        command += self.arguments
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.environment}
            )
        return self

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if event is None or record.get("event") == event:
                found.append(record)
        return found

    def wait_for_event(self, event: str, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        return until(
            lambda: self.events(event),
            lambda found: len(found) >= count,
            timeout=timeout,
            what=event,
            interval=0.05,
        )

    def metrics(self) -> dict[str, float]:
        """Each sample of /metrics as ``name{labels}`` -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return {
            line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def health(self) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=5
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def daemons(workdir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons; every one still running is stopped after the test."""
    started: list[DaemonProcess] = []

    def start(state_file: Path, kubeconfig: Path, **options: Any) -> DaemonProcess:
        daemon = DaemonProcess(state_file, kubeconfig, workdir, **options).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(10)
