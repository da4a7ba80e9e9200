"""The daemon as users run it: a real process against the API server and a NetScaler simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from peeringd.lab.nssim import NetScalerSimulator
from tests.bgplab.poll import until
from tests.conftest import Cluster
from tests.runtime import daemon_harness
from tests.runtime.daemon_harness import DaemonProcess, NotifySocket


@dataclass
class World:
    cluster: Cluster
    adc: NetScalerSimulator
    state_file: Path
    secrets: Path

    def neighbours(self) -> list[str]:
        router = self.adc.running().zebos.bgp
        return sorted(router.neighbors) if router else []

    def max_paths_ebgp(self) -> int | None:
        router = self.adc.running().zebos.bgp
        return router.max_paths_ebgp if router else None

    def text(self, **fields: object) -> str:
        return daemon_harness.state_text(self.adc, self.secrets, **fields)  # type: ignore[arg-type]


@pytest.fixture
def world(cluster: Cluster, tmp_path: Path) -> Iterator[World]:
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as adc:
        secrets = daemon_harness.write_secrets(adc, tmp_path / "secrets")
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        state_file = state_dir / "peering.yaml"
        state_file.write_text(daemon_harness.state_text(adc, secrets))
        yield World(cluster, adc, state_file, secrets)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    yield from daemon_harness.daemons(tmp_path)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    socket = NotifySocket(tmp_path / "notify.sock")
    yield socket
    socket.close()


def converged(daemon: DaemonProcess, count: int = 1) -> None:
    until(
        lambda: [e for e in daemon.events("pass done") if e["outcome"] == "converged"],
        lambda found: len(found) >= count,
        timeout=20,
        what=f"{count} converged passes",
    )


def test_start_converges_and_tells_systemd(
    world: World, start: Callable[..., DaemonProcess], notify: NotifySocket
) -> None:
    daemon = start(
        world.state_file, world.cluster.kubeconfig, environment={"NOTIFY_SOCKET": str(notify.path)}
    )
    until(notify.received, lambda m: any(x.get("READY") == "1" for x in m), timeout=20, what="READY=1")

    assert world.neighbours() == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert world.cluster.server.get(world.cluster.resource("bgppeers"), "adc-1") is not None
    assert any(m.get("STATUS", "").startswith("converged: 1 ADCs") for m in notify.received())
    assert daemon.health() == (200, "ok\n")
    metrics = daemon.metrics()
    assert metrics['peeringd_reconcile_total{result="converged"}'] >= 1
    assert metrics['peeringd_changes_applied_total{action="create",side="adc"}'] == 4
    assert metrics["peeringd_config_stale"] == 0
    assert daemon.stop() == 0


def test_the_daemon_loads_no_charset_detector_and_says_nothing_of_it(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    """requests' charset detector (its compiled module is a few MB of the daemon's size) is
    declined, and requests' warning about its absence is not printed."""
    charset_normalizer = pytest.importorskip("charset_normalizer")
    if not list(Path(charset_normalizer.__file__).parent.glob("*.so")):
        pytest.skip("this charset_normalizer is pure Python: a process's maps cannot show it")
    daemon = start(world.state_file, world.cluster.kubeconfig)
    converged(daemon)
    mapped = Path(f"/proc/{daemon.pid}/maps").read_text()
    log = daemon.log.read_text()
    assert daemon.stop() == 0

    assert "charset_normalizer" not in mapped
    assert "character detection" not in log


def test_the_daemon_asks_calico_node_for_nothing_and_reads_sessions_from_the_adc(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    """No CalicoNodeStatus (each would make calico-node write to the API server): the ADC sees
    every session, and says which are up."""
    world.adc.set_bgp_session("10.0.0.12", "Active")
    daemon = start(world.state_file, world.cluster.kubeconfig)
    converged(daemon)
    metrics = daemon.metrics()

    assert world.cluster.server.objects(world.cluster.resource("caliconodestatuses")) == []
    assert world.cluster.server.count("create", "list", resource="caliconodestatuses") == 0
    assert metrics['peeringd_bgp_session_up{adc="adc-1",neighbor="10.0.0.11",node="node-1"}'] == 1
    assert metrics['peeringd_bgp_session_up{adc="adc-1",neighbor="10.0.0.12",node="node-2"}'] == 0
    assert daemon.stop() == 0


def test_a_pass_that_changes_nothing_lists_no_node_and_writes_nothing(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    """The Nodes come from the watched cache: three requests, two device commands, no write."""
    daemon = start(world.state_file, world.cluster.kubeconfig)
    converged(daemon)
    until(
        lambda: world.cluster.server.count("watch", resource="nodes"), bool, timeout=10, what="the node watch"
    )
    daemon.signal(signal.SIGHUP)
    converged(daemon, 2)  # the pass after the change pass re-enters vtysh once
    world.cluster.server.clear_journal()
    world.adc.clear_journal()
    daemon.signal(signal.SIGHUP)
    converged(daemon, 3)

    requests = [
        (e.verb, e.resource) for e in world.cluster.server.journal if e.resource != "caliconodestatuses"
    ]
    assert requests == [("list", "bgppeers"), ("get", "bgpconfigurations"), ("list", "ippools")]
    assert [e.text for e in world.adc.journal() if e.text.strip()] == [
        "show running-config",
        "show ip bgp summary",
    ]
    assert daemon.stop() == 0


def _atomic_rename(path: Path, text: str) -> None:
    staged = path.with_name(".peering.yaml.swp")
    staged.write_text(text)
    os.replace(staged, path)


def _in_place(path: Path, text: str) -> None:
    with path.open("r+") as stream:
        stream.truncate()
        stream.write(text)


def _symlink_swap(path: Path, text: str) -> None:
    """What a Kubernetes ConfigMap mount does: a new timestamped folder, then ..data swapped."""
    folder = path.parent
    fresh = folder / f"..{len(list(folder.glob('..2*')))}_2026"
    fresh.mkdir()
    (fresh / path.name).write_text(text)
    (folder / "..data_tmp").symlink_to(fresh.name)
    os.replace(folder / "..data_tmp", folder / "..data")


def _as_configmap(world: World) -> None:
    first = world.state_file.parent / "..1_2026"
    first.mkdir()
    (first / world.state_file.name).write_text(world.state_file.read_text())
    (world.state_file.parent / "..data").symlink_to(first.name)
    world.state_file.unlink()
    world.state_file.symlink_to(f"..data/{world.state_file.name}")


@pytest.mark.parametrize(
    "edit", [_atomic_rename, _in_place, _symlink_swap], ids=lambda f: f.__name__.strip("_")
)
def test_a_file_edit_is_applied_at_once(
    world: World, start: Callable[..., DaemonProcess], edit: Callable[[Path, str], None]
) -> None:
    """With an interval of an hour, only the file watch can bring the change."""
    if edit is _symlink_swap:
        _as_configmap(world)
    daemon = start(world.state_file, world.cluster.kubeconfig)
    converged(daemon)
    edit(world.state_file, world.text(ebgp=4))

    until(world.max_paths_ebgp, lambda paths: paths == 4, timeout=10, what="max-paths ebgp 4")
    assert daemon.events("state file changed")
    assert daemon.stop() == 0


def test_a_broken_file_keeps_the_last_good_state_and_says_so(
    world: World, start: Callable[..., DaemonProcess], notify: NotifySocket
) -> None:
    daemon = start(
        world.state_file, world.cluster.kubeconfig, environment={"NOTIFY_SOCKET": str(notify.path)}
    )
    converged(daemon)
    world.state_file.write_text(world.text().replace("asNumber: 500", "asNumber: [500"))

    until(daemon.metrics, lambda m: m["peeringd_config_stale"] == 1, timeout=10, what="stale metric 1")
    (error,) = daemon.events("state file does not load; keeping the last good state")
    assert f"{world.state_file}:10:" in error["error"]
    world.cluster.add_node("node-4", "10.0.0.14")  # the last good state still reconciles
    until(world.neighbours, lambda found: "10.0.0.14" in found, timeout=10, what="node-4 peered")
    assert any(m.get("STATUS", "").startswith("state file stale") for m in notify.received())
    world.state_file.write_text(world.text())
    until(daemon.metrics, lambda m: m["peeringd_config_stale"] == 0, timeout=10, what="stale metric 0")
    assert daemon.stop() == 0


def test_sighup_reloads_and_runs_a_pass(
    world: World, start: Callable[..., DaemonProcess], notify: NotifySocket
) -> None:
    daemon = start(
        world.state_file, world.cluster.kubeconfig, environment={"NOTIFY_SOCKET": str(notify.path)}
    )
    converged(daemon)
    daemon.signal(signal.SIGHUP)

    daemon.wait_for_event("pass requested")
    assert [e["reason"] for e in daemon.events("pass requested")] == ["SIGHUP"]
    until(notify.received, lambda m: any("RELOADING" in x for x in m), timeout=10, what="RELOADING=1")
    converged(daemon, 2)
    assert daemon.stop() == 0


def test_sigterm_mid_pass_finishes_the_device_session(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    world.adc.delay_replies(1.5, r"neighbor 10\.0\.0\.12 remote-as 64512")
    daemon = start(world.state_file, world.cluster.kubeconfig)
    until(
        lambda: [e.text for e in world.adc.journal()],
        lambda lines: "neighbor 10.0.0.12 remote-as 64512" in lines,
        timeout=20,
        what="the configuration session under way",
    )
    daemon.signal(signal.SIGTERM)

    assert daemon.stop() == 0
    lines = [e.text for e in world.adc.journal()]
    assert lines.index("end") > lines.index("neighbor 10.0.0.13 remote-as 64512")
    assert "save ns config" in lines
    assert world.neighbours() == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]


def test_a_second_daemon_is_refused_naming_the_first(
    world: World, start: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    first = start(world.state_file, world.cluster.kubeconfig)
    converged(first)
    second = subprocess.run(
        [
            str(Path(sys.executable).parent / "peeringd"),
            "run",
            "-f",
            str(world.state_file),
            "--kubeconfig",
            str(world.cluster.kubeconfig),
            "--lock-file",
            str(tmp_path / "peeringd.lock"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert second.returncode == 1
    assert f"another peeringd (pid {first.process.pid}) holds {tmp_path}/peeringd.lock" in second.stdout  # type: ignore[union-attr]
    assert first.stop() == 0


def test_a_node_joining_is_peered_without_waiting_for_the_interval(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    daemon = start(world.state_file, world.cluster.kubeconfig)
    converged(daemon)
    world.cluster.add_node("node-4", "10.0.0.14")

    until(world.neighbours, lambda found: "10.0.0.14" in found, timeout=10, what="node-4 peered")
    assert [e["reason"] for e in daemon.events("pass requested")] == ["node node-4 joined"]
    assert daemon.stop() == 0


def test_an_adc_that_is_down_does_not_stop_calico(
    world: World, start: Callable[..., DaemonProcess], notify: NotifySocket
) -> None:
    """The ADC is down: its BGPPeer waits, but the mesh setting still reaches Calico; failures back off."""
    world.state_file.write_text(
        world.text().replace("asNumber: 64512", "asNumber: 64512\n  nodeToNodeMesh: false")
    )
    world.adc.stop()
    daemon = start(
        world.state_file, world.cluster.kubeconfig, environment={"NOTIFY_SOCKET": str(notify.path)}
    )
    configuration = until(
        lambda: world.cluster.server.get(world.cluster.resource("bgpconfigurations"), "default"),
        lambda found: found is not None,
        timeout=20,
        what="BGPConfiguration default",
    )

    assert configuration is not None
    assert configuration["spec"]["nodeToNodeMeshEnabled"] is False
    assert world.cluster.server.objects(world.cluster.resource("bgppeers")) == []
    retries = until(
        lambda: [m["STATUS"] for m in notify.received() if m.get("STATUS", "").startswith("failing")],
        lambda found: len(found) >= 2,
        timeout=20,
        what="two failed passes",
    )
    assert "retry in 2s" in retries[0] or "retry in 1s" in retries[0]
    assert "(2 in a row, retry in" in retries[1]
    assert daemon.stop() == 0


def test_an_api_server_that_fails_does_not_stop_the_adc(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    daemon = start(world.state_file, world.cluster.kubeconfig)
    converged(daemon)
    world.cluster.server.inject_fault("list", "nodes", status=503, times=1000)
    world.state_file.write_text(world.text(ebgp=2))

    until(world.max_paths_ebgp, lambda paths: paths == 2, timeout=10, what="max-paths ebgp 2")
    assert world.neighbours() == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert daemon.stop() == 0


def test_without_a_valid_file_the_daemon_does_not_start(
    world: World, start: Callable[..., DaemonProcess]
) -> None:
    world.state_file.write_text("apiVersion: peeringd/v1\n")
    daemon = start(world.state_file, world.cluster.kubeconfig)

    assert daemon.process is not None
    assert daemon.process.wait(30) == 1
    (event,) = daemon.events("cannot start: the state file does not load")
    assert f"{world.state_file}:1:1: kind: is required" in event["error"]


def test_the_watchdog_is_fed_when_systemd_asks(
    world: World, start: Callable[..., DaemonProcess], notify: NotifySocket
) -> None:
    environment = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    daemon = start(world.state_file, world.cluster.kubeconfig, environment=environment)

    until(
        notify.received,
        lambda m: sum(x.get("WATCHDOG") == "1" for x in m) >= 3,
        timeout=20,
        what="three WATCHDOG=1",
    )
    assert daemon.stop() == 0


def test_the_lab_converges_once_from_the_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "peeringd"),
            "lab",
            "--once",
            "--workdir",
            str(tmp_path / "lab"),
            "-f",
            str(Path(__file__).resolve().parents[2] / "state" / "peering.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "lab: converged, 9 changes applied" in result.stdout
    assert result.stdout.count(" established\n") == 3
