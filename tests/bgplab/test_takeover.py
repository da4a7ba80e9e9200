"""Taking over a hand-built peering without dropping a session, and handing it back, with real BGP.

The manual setup is built as the seed procedure builds it: the BGPPeer `bgppeer-global-3040`
created through the API (what `kubectl create -f bgp.yml` does), and on the router `router bgp`
with one `neighbor ... remote-as` per node typed into vtysh, without description. Then the four
commands of the README's migration (import, validate, plan --adopt, apply --adopt) and the way
back (release), run as a user runs them. FRR's per-neighbour counters of sessions established and
dropped and of NOTIFICATIONs, and the time BIRD last changed each protocol's state, prove that no
session flapped. Both Calico API groups.
"""

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from peeringd.core import ownership
from peeringd.lab.kubeapi import WRITE_VERBS, CalicoApi, KubeApiServer
from tests.conftest import CRD_SOURCE, node_object, pool_object

from . import bird, lab, poll
from .calico_node import CalicoNodeAgent
from .conftest import skip_unless_lab_can_run
from .errors import LabError
from .lab import BgpLab

pytestmark = pytest.mark.lab

ROUTER_AS = 65001
CLUSTER_AS = 64512
CLUSTER = "lab"
HAND_MADE = "bgppeer-global-3040"
GLOBAL_PEER = bird.protocol_name("Global", lab.ROUTER_ADDRESS)
PEERINGD = Path(sys.executable).parent / "peeringd"
ESTABLISHED_WITHIN = 30.0
# Longer than FRR's rounding of uptimes; the sessions are up longer than this before the test starts.
UPTIME_SLACK_MS = 1500
GROUPS: dict[CalicoApi, str] = {"v1": "crd.projectcalico.org/v1", "v3": "projectcalico.org/v3"}


@dataclass
class Session:
    """One BGP session as both ends count it: what would change if it dropped. A neighbour
    removed and re-added counts from zero again, so its uptime tells that too."""

    frr_state: str
    established: int
    dropped: int
    notifications: tuple[int, int]
    bird_state: str
    bird_since: str
    uptime_ms: int = field(compare=False)
    read_at: float = field(compare=False)

    def grew_since(self, earlier: "Session") -> bool:
        """Whether the uptime grew by the time passed since ``earlier`` (FRR rounds to the second)."""
        passed_ms = (self.read_at - earlier.read_at) * 1000
        return self.uptime_ms >= earlier.uptime_ms + passed_ms - UPTIME_SLACK_MS


@dataclass
class ManualSetup:
    """The lab after the seed procedure, and what a user passes to peeringd."""

    lab: BgpLab
    server: KubeApiServer
    calico: CalicoNodeAgent
    group: str
    kubeconfig: Path
    password_file: Path
    state_file: Path

    def peeringd(self, command: str, *options: str) -> subprocess.CompletedProcess[str]:
        """A peeringd command as a user runs it; those that reach the cluster get its kubeconfig."""
        kubeconfig = [] if command == "validate" else ["--kubeconfig", str(self.kubeconfig)]
        argv = [str(PEERINGD), command, *options, *kubeconfig]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    def on_file(self, command: str, *options: str) -> subprocess.CompletedProcess[str]:
        return self.peeringd(command, *options, "-f", str(self.state_file))

    def import_(self) -> subprocess.CompletedProcess[str]:
        login = self.lab.router.login
        return self.peeringd(
            "import",
            "--cluster",
            CLUSTER,
            "--adc",
            f"frr-1={login.host}:{login.port}",
            "--platform",
            "frr",
            "--username",
            login.username,
            "--password-file",
            str(self.password_file),
            "--known-hosts",
            str(login.known_hosts),
            "-o",
            str(self.state_file),
        )

    def hand_made_peer(self) -> dict[str, Any]:
        found = self.server.get(f"bgppeers.{self.group.split('/')[0]}", HAND_MADE)
        assert found is not None
        return found

    def peer_names(self) -> list[str]:
        return [
            item["metadata"]["name"] for item in self.server.objects(f"bgppeers.{self.group.split('/')[0]}")
        ]

    def kube_writes(self) -> list[tuple[str, str | None, str | None]]:
        return [(e.verb, e.resource, e.name) for e in self.server.journal if e.verb in WRITE_VERBS]

    def running_config(self) -> str:
        return self.lab.router.frr.vtysh("show running-config")

    def sessions(self) -> dict[str, Session]:
        """Every node's session with the router, from FRR's and the node's BIRD's side."""
        self.calico.check()
        read_at = time.monotonic()
        neighbours = json.loads(self.lab.router.frr.vtysh("show ip bgp neighbors json"))
        found = {}
        for node in self.lab.nodes.values():
            frr = neighbours[str(node.address)]
            stats = frr["messageStats"]
            row = next(row for row in node.bird.protocols() if row.name == GLOBAL_PEER)
            found[node.name] = Session(
                frr_state=frr["bgpState"],
                established=int(frr["connectionsEstablished"]),
                dropped=int(frr["connectionsDropped"]),
                notifications=(int(stats["notificationsSent"]), int(stats["notificationsRecv"])),
                bird_state=row.info,
                bird_since=row.since,
                uptime_ms=int(frr["bgpTimerUpMsec"]),
                read_at=read_at,
            )
        return found

    def routes_installed(self) -> bool:
        """Each node's pod block is in the router's kernel table, via that node."""
        routes = self.lab.router.frr.bgp_routes()
        return all(str(node.address) in routes.get(str(node.block), ()) for node in self.lab.nodes.values())


def typed_into_vtysh(setup_lab: BgpLab) -> None:
    """Step 4 to 6 of the procedure, on FRR: `router bgp`, then one neighbour per node, no description.

    FRR drops eBGP routes without a policy unless told not to, and shows max-paths the way
    the procedure's running config does under its address family.
    """
    lines = [f"router bgp {ROUTER_AS}", "no bgp ebgp-requires-policy"]
    lines += [f"neighbor {node.address} remote-as {CLUSTER_AS}" for node in setup_lab.nodes.values()]
    lines += ["address-family ipv4 unicast", "maximum-paths 8", "maximum-paths ibgp 8", "exit-address-family"]
    setup_lab.router.frr.configure(*lines)


def kubectl_create(kubeconfig: Path, group: str) -> None:
    """`kubectl create -f bgp.yml` of the procedure: the global peer at the router, through the API."""
    api_group, version = group.split("/")
    body = {
        "apiVersion": group,
        "kind": "BGPPeer",
        "metadata": {"name": HAND_MADE},
        "spec": {"peerIP": str(lab.ROUTER_ADDRESS), "asNumber": ROUTER_AS},
    }
    with kubernetes.config.new_client_from_config(config_file=str(kubeconfig)) as client:
        kubernetes.client.CustomObjectsApi(client).create_cluster_custom_object(
            api_group, version, "bgppeers", body
        )


@contextlib.contextmanager
def manual_setup(workdir: Path, api: CalicoApi) -> Iterator[ManualSetup]:
    """The lab peered by hand, every session Established and every route installed; torn down in
    reverse order on leaving, even by an exception."""
    group = GROUPS[api]
    with contextlib.ExitStack() as stack:
        bgp_lab = stack.enter_context(BgpLab(node_count=2))
        server = stack.enter_context(KubeApiServer(CRD_SOURCE, api))
        server.put(pool_object(group, str(lab.POD_POOL)))
        for node in bgp_lab.nodes.values():
            server.put(node_object(node.name, str(node.address)))
        kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
        password_file = workdir / "frr-1.password"
        password_file.write_text(bgp_lab.router.login.password + "\n")
        password_file.chmod(0o600)
        calico = stack.enter_context(CalicoNodeAgent(bgp_lab, server, group.split("/")[0]))
        kubectl_create(kubeconfig, group)
        typed_into_vtysh(bgp_lab)
        setup = ManualSetup(
            bgp_lab, server, calico, group, kubeconfig, password_file, workdir / "peering.yaml"
        )
        poll.until(
            lambda: _all_established(setup),
            bool,
            timeout=ESTABLISHED_WITHIN,
            what="every hand-made session Established on both ends",
        )
        poll.until(setup.routes_installed, bool, timeout=ESTABLISHED_WITHIN, what="every pod block installed")
        yield setup


def _all_established(setup: ManualSetup) -> bool:
    """Whether every session is up on both ends; False while a BIRD or a neighbour is not there yet."""
    try:
        sessions = setup.sessions()
    except (LabError, KeyError, StopIteration):
        return False
    # Up for a while, so that a flap later could not hide in the slack of the uptimes.
    return all(
        s.frr_state == "Established"
        and s.bird_state.startswith("Established")
        and s.uptime_ms > 2 * UPTIME_SLACK_MS
        for s in sessions.values()
    )


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_the_manual_setup_is_taken_over_and_handed_back_without_a_flap(
    tmp_path: Path, api: CalicoApi
) -> None:
    """import writes a valid file and nothing else; plan --adopt only adopts; apply --adopt owns every
    object; a second apply plans nothing; release hands everything back; no session ever drops."""
    skip_unless_lab_can_run()
    with manual_setup(tmp_path, api) as setup:
        before = setup.sessions()
        typed = setup.running_config()
        marks = sorted(
            f" neighbor {node.address} description peeringd:{CLUSTER}:{node.name}"
            for node in setup.lab.nodes.values()
        )
        setup.server.clear_journal()

        imported = setup.import_()
        import_writes = setup.kube_writes()
        after_import = setup.running_config()
        validated = setup.on_file("validate")
        planned = setup.on_file("plan", "--adopt", "-o", "json")
        adopted = setup.on_file("apply", "--adopt", "--yes")
        owned = setup.hand_made_peer()
        peers = setup.peer_names()
        adopted_config = setup.running_config()
        during = setup.sessions()
        again = setup.on_file("apply", "--yes")
        released = setup.on_file("release", "--yes")
        handed_back = setup.hand_made_peer()
        released_config = setup.running_config()
        hand_made_again = setup.on_file("plan")
        after = setup.sessions()
        routes = setup.routes_installed()

    assert imported.returncode == 0, imported.stderr
    assert import_writes == []
    assert after_import == typed
    assert validated.returncode == 0, validated.stderr
    assert planned.returncode == 2, planned.stderr
    document = json.loads(planned.stdout)
    assert document["counts"] == {"create": 0, "update": 1, "delete": 0, "adopt": 3, "release": 0}
    assert {(c["kind"], c["action"]) for c in document["changes"]} == {
        ("neighbour", "adopt"),
        ("save", "update"),
        ("bgppeer", "adopt"),
    }
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert ownership.owns(owned["metadata"]["labels"], owned["metadata"]["annotations"], CLUSTER)
    assert owned["metadata"]["annotations"][ownership.ADC_ANNOTATION] == "frr-1"
    assert peers == [HAND_MADE]
    added = sorted(set(adopted_config.splitlines()) - set(typed.splitlines()))
    assert added == marks
    assert set(typed.splitlines()) <= set(adopted_config.splitlines())
    assert (again.returncode, again.stdout) == (0, "No changes: live state matches the file.\n")
    assert released.returncode == 0, released.stdout + released.stderr
    assert released_config == typed
    assert handed_back["spec"] == owned["spec"]
    assert handed_back["metadata"].get("labels", {}) == {}
    assert handed_back["metadata"].get("annotations", {}) == {}
    assert hand_made_again.returncode == 0, hand_made_again.stderr
    assert (
        hand_made_again.stdout.count(f"was not made by peeringd for cluster {CLUSTER} and peers as wanted")
        == 2
    )
    assert (
        f"BGPPeer {HAND_MADE} (not peeringd's) already peers with {lab.ROUTER_ADDRESS}"
        in hand_made_again.stdout
    )
    assert during == before
    assert after == before
    assert all(during[node].grew_since(before[node]) for node in before), (before, during)
    assert all(after[node].grew_since(during[node]) for node in before), (during, after)
    assert all(
        s.frr_state == "Established" and s.bird_state.startswith("Established") for s in after.values()
    )
    assert routes
