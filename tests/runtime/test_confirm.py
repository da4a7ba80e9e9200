"""policy.confirm through `peeringd apply`: the lab's API server, NetScaler simulator and calico-node.

The lab's calico-node stand-in reports a session Established on both ends only when the
BGPPeer's asNumber is the ADC's running AS: a file whose ADC AS differs, applied to Calico
alone, breaks every session, as it would on a real router.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peeringd.lab.lab import CALICO, Lab
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
