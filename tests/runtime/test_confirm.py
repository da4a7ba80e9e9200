"""policy.confirm through `peeringd apply`: the lab's API server, NetScaler simulator and calico-node.

The lab's calico-node stand-in reports a session Established on both ends only when the
BGPPeer's asNumber is the ADC's running AS: a file whose ADC AS differs, applied to Calico
alone, breaks every session, as it would on a real router.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from peeringd.lab.lab import CALICO, Lab
from tests.bgplab.poll import until
from tests.runtime import daemon_harness
from tests.runtime.daemon_harness import DaemonProcess, NotifySocket
from tests.runtime.test_cli import PEERINGD, peeringd
from tests.support import REPO

WITHIN = 10
PEERS = f"bgppeers.{CALICO}"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    user_file = tmp_path / "peering.yaml"
    user_file.write_text(
        (REPO / "state" / "peering.yaml").read_text()
        + f"  allowASChange: true\n  confirm: {{within: {WITHIN}s}}\n"
    )
    running = Lab(user_file, tmp_path / "lab")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def apply(lab: Lab, *options: str) -> subprocess.CompletedProcess[str]:
    return peeringd(
        "apply", "--yes", *options, "-f", lab.state_file, "--kubeconfig", lab.kubeconfig,
        "--state-dir", lab.workdir / "state",
    )  # fmt: skip


def edit(lab: Lab, old: str, new: str) -> None:
    """Change the user's file and copy it for peeringd, as the lab does."""
    lab.user_file.write_text(lab.user_file.read_text().replace(old, new))
    lab.sync()


def peer(lab: Lab) -> dict[str, Any]:
    found = lab.api.get(PEERS, "adc-1")
    assert found is not None
    return found


def peer_as(lab: Lab) -> int:
    return int(peer(lab)["spec"]["asNumber"])


def test_a_change_that_keeps_the_sessions_up_is_confirmed_and_kept(lab: Lab) -> None:
    result = apply(lab)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Confirmed: the sessions are Established (policy.confirm within 10s)." in result.stdout
    assert peer_as(lab) == 500
    assert not (lab.workdir / "state").exists()


def test_a_change_that_breaks_the_sessions_is_reverted_and_not_applied_again(lab: Lab) -> None:
    assert apply(lab).returncode == 0
    edit(lab, "asNumber: 500", "asNumber: 501")

    reverted = apply(lab, "--only", "calico", "-o", "json")
    again = apply(lab, "--only", "calico")

    assert reverted.returncode == 5, reverted.stdout + reverted.stderr
    confirmation = json.loads(reverted.stdout)["confirmation"]
    assert confirmation["confirmed"] is False
    assert [c["name"] for c in confirmation["reverted"]] == ["adc-1"]
    assert (confirmation["left"], confirmation["unreverted"]) == ([], [])
    assert {row["verdict"] for row in confirmation["down"]} == {"down"}
    assert peer_as(lab) == 500
    assert again.returncode == 3
    assert "was reverted: sessions not Established within 10s" in again.stderr
    assert peer_as(lab) == 500


def test_force_applies_a_reverted_state_again(lab: Lab) -> None:
    assert apply(lab).returncode == 0
    edit(lab, "asNumber: 500", "asNumber: 501")
    assert apply(lab, "--only", "calico").returncode == 5

    forced = apply(lab, "--only", "calico", "--force")

    assert forced.returncode == 5, forced.stdout + forced.stderr
    assert "Reverted 1 changes: sessions not Established within 10s" in forced.stderr
    assert "reverted calico: BGPPeer adc-1: as_number 501 -> 500" in forced.stderr


def test_a_peer_changed_by_hand_during_the_window_is_left_alone(lab: Lab) -> None:
    assert apply(lab).returncode == 0
    edit(lab, "asNumber: 500", "asNumber: 501")
    argv = [
        PEERINGD,
        "apply",
        "--yes",
        "--only",
        "calico",
        "-f",
        lab.state_file,
        "--kubeconfig",
        lab.kubeconfig,
    ]
    argv += ["--state-dir", lab.workdir / "state"]
    with subprocess.Popen(
        list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        deadline = time.monotonic() + WITHIN
        while peer_as(lab) != 501 and time.monotonic() < deadline:
            time.sleep(0.1)
        by_hand = peer(lab)
        by_hand["spec"]["asNumber"] = 502
        lab.api.put(by_hand)
        _, stderr = run.communicate(timeout=60)

    assert run.returncode == 5, stderr
    assert "left calico: update of bgppeer adc-1: was changed by someone else since the pass" in stderr
    assert peer_as(lab) == 502


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    yield from daemon_harness.daemons(tmp_path)


def test_the_daemon_reverts_says_so_and_waits_for_a_new_file(
    lab: Lab, start: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """The daemon's own copy moves the cluster to AS 64513 while the lab's calico-node keeps
    reading 64512 (the nodes' real AS): the ADC's neighbours then expect the wrong AS."""
    own = tmp_path / "daemon.yaml"
    own.write_text(lab.state_file.read_text())
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = start(own, lab.kubeconfig, environment={"NOTIFY_SOCKET": str(notify.path)})
    daemon.wait_for_event("pass confirmed: the sessions are Established", timeout=60)
    own.write_text(own.read_text().replace("asNumber: 64512", "asNumber: 64513"))

    reverted = daemon.wait_for_event("pass reverted", timeout=60)[0]
    daemon.signal(signal.SIGHUP)  # a pass on the same file: not applied again
    until(
        lambda: [e for e in daemon.events("pass done") if e["outcome"] == "drift"],
        bool,
        timeout=30,
        what="a pass that leaves the reverted state unapplied",
    )

    assert "BGPConfiguration default: as_number 64513 -> 64512" in " ".join(reverted["reverted"])
    assert (reverted["left"], reverted["unreverted"]) == ([], [])
    assert daemon.metrics()["peeringd_reverts_total"] == 1
    statuses = [m.get("STATUS", "") for m in notify.received()]
    assert any(
        s.startswith("reverted ") and "not applied again until the file changes" in s for s in statuses
    )
    assert any(s.startswith("not applying state ") for s in statuses)
    configuration = lab.api.get(f"bgpconfigurations.{CALICO}", "default")
    assert configuration is not None
    assert configuration["spec"]["asNumber"] == 64512
    assert daemon.stop() == 0
    notify.close()


def test_a_revert_the_guards_refuse_leaves_the_pass_applied_and_says_so(lab: Lab) -> None:
    """A first apply to Calico alone: its revert would remove the only BGPPeer (allowEmpty)."""
    result = apply(lab, "--only", "calico")

    assert result.returncode == 5, result.stdout + result.stderr
    assert "Reverted 0 changes: sessions not Established within 10s" in result.stderr
    assert (
        "  error calico: calico: the plan removes every peeringd BGPPeer (1); set policy.allowEmpty"
        in result.stderr
    )
    assert peer_as(lab) == 500
