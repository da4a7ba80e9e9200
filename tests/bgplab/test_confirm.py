"""policy.confirm with real BGP: FRR as the ADC, BIRD on the nodes, `peeringd apply` as a user runs it.

A change that breaks the peering is reverted and the sessions come back; a good change is
kept; a calico-node (BIRD) restart during the window is not mistaken for a broken change.
"""

import json
import subprocess
from collections.abc import Iterator

import pytest

from .conftest import skip_unless_lab_can_run
from .test_end_to_end import (
    ADC,
    CALICO_GROUP,
    PEERINGD,
    ROUTER_AS,
    EndToEnd,
    connections,
    end_to_end,
    wait_until_converged,
)

pytestmark = pytest.mark.lab

WITHIN = 30
PEERS = f"bgppeers.{CALICO_GROUP.partition('/')[0]}"


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndToEnd]:
    skip_unless_lab_can_run()
    with end_to_end(tmp_path_factory.mktemp("confirm")) as environment:
        text = environment.state_file.read_text()
        confirming = f"policy: {{interval: 1h, allowASChange: true, confirm: {{within: {WITHIN}s}}}}\n"
        environment.state_file.write_text(text.replace("policy: {interval: 1h}\n", confirming))
        yield environment


def apply(e2e: EndToEnd, *options: str) -> subprocess.CompletedProcess[str]:
    return e2e.peeringd("apply", "--yes", "--state-dir", str(e2e.workdir / "memory"), *options)


def peer_as(e2e: EndToEnd) -> int:
    peer = e2e.server.get(PEERS, ADC)
    assert peer is not None
    return int(peer["spec"]["asNumber"])


def test_a_good_change_is_confirmed_and_kept(e2e: EndToEnd) -> None:
    """The first apply: every session is new, and all come up within the window."""
    result = apply(e2e)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Confirmed: the sessions are Established (policy.confirm within {WITHIN}s)." in result.stdout
    wait_until_converged(e2e)
    assert peer_as(e2e) == ROUTER_AS


def test_a_change_that_breaks_the_peering_is_reverted_and_the_sessions_come_back(e2e: EndToEnd) -> None:
    """The file says the router runs AS 65002; it runs 65001: BIRD refuses the router's OPEN."""
    wait_until_converged(e2e)
    original = e2e.state_file.read_text()
    e2e.state_file.write_text(original.replace(f"asNumber: {ROUTER_AS}", "asNumber: 65002"))
    try:
        result = apply(e2e, "--only", "calico", "-o", "json")
        again = apply(e2e, "--only", "calico")
    finally:
        e2e.state_file.write_text(original)

    assert result.returncode == 5, result.stdout + result.stderr
    confirmation = json.loads(result.stdout)["confirmation"]
    assert [(c["name"], c["after"]["as_number"]) for c in confirmation["reverted"]] == [(ADC, ROUTER_AS)]
    assert {row["node"] for row in confirmation["down"]} == {node.name for node in e2e.kubernetes_nodes()}
    assert (again.returncode, "change the file, or apply --force" in again.stderr) == (3, True)
    assert peer_as(e2e) == ROUTER_AS
    wait_until_converged(e2e)


def test_a_bird_restart_during_the_window_is_not_reverted(e2e: EndToEnd) -> None:
    """A node joins (a new session to confirm) and another node's BIRD restarts meanwhile."""
    wait_until_converged(e2e)
    restarted = e2e.kubernetes_nodes()[0]
    joining = e2e.add_node()
    dropped_before = connections(e2e)[str(restarted.address)][1]
    argv = [str(PEERINGD), "apply", "--yes", "--state-dir", str(e2e.workdir / "memory")]
    argv += ["-f", str(e2e.state_file), "--kubeconfig", str(e2e.kubeconfig)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        assert run.stderr is not None
        for line in run.stderr:
            if '"event": "change applied"' in line:
                break
        with e2e.calico.paused():
            restarted.bird.restart()
        stdout, stderr = run.communicate(timeout=WITHIN + 60)

    assert run.returncode == 0, stdout + stderr
    assert "Confirmed: the sessions are Established" in stdout
    assert connections(e2e)[str(restarted.address)][1] > dropped_before
    assert str(joining.address) in e2e.lab.router.frr.vtysh("show running-config")
    wait_until_converged(e2e)
