"""From the manual setup to peeringd and back, with the real CLI, API server and NetScaler simulator.

The setup is the seed procedure's: a global BGPPeer `bgppeer-global-3040` made by hand, and on the
ADC `router bgp 500` with one `neighbor ... remote-as 64512` per node, typed without description.
The journals of both stand-ins prove what each command sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from peeringd.core import ownership
from peeringd.lab.kubeapi import WRITE_VERBS
from peeringd.lab.nssim import NetScalerSimulator, write_known_hosts
from tests.conftest import Cluster
from tests.runtime.test_cli import peeringd

HAND_MADE = "bgppeer-global-3040"
NODES = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
SEED_ZEBOS = """\
router bgp 500
 max-paths ebgp 8
 max-paths ibgp 8
 neighbor 10.0.0.11 remote-as 64512
 neighbor 10.0.0.12 remote-as 64512
 neighbor 10.0.0.13 remote-as 64512
!
ns route-install bgp
"""
# Lines that move between modes of a configuration session and change nothing themselves.
NAVIGATION = {"configure terminal", "router bgp 500", "exit", "end"}
READS = ("show ", "vtysh", "exit", "set cli mode -page OFF", "")


@pytest.fixture
def adc(tmp_path: Path) -> Iterator[NetScalerSimulator]:
    """The ADC after the seed procedure: BGP on, router bgp 500, neighbours without description, saved."""
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as simulator:
        simulator.set_feature("BGP", True)
        simulator.load_zebos(SEED_ZEBOS)
        simulator.save()
        for address in NODES:
            simulator.set_bgp_session(address, prefixes=1)
        yield simulator


def hand_made_peer(cluster: Cluster, name: str = HAND_MADE, **spec: object) -> None:
    """`kubectl create -f bgp.yml` of the seed procedure."""
    body = {"peerIP": "10.0.0.100", "asNumber": 500, **spec}
    cluster.server.put(
        {"apiVersion": cluster.group, "kind": "BGPPeer", "metadata": {"name": name}, "spec": body}
    )


class Setup:
    """The manual setup and the options `peeringd import` needs to read it."""

    def __init__(self, cluster: Cluster, adc: NetScalerSimulator, folder: Path) -> None:
        self.cluster = cluster
        self.adc = adc
        self.port = adc.port  # kept: a test may stop the simulator
        self.folder = folder
        self.password_file = folder / "adc-1.password"
        self.password_file.write_text(adc.password + "\n")
        self.known_hosts = folder / "known_hosts"
        write_known_hosts(self.known_hosts, [adc])
        self.state_file = folder / "peering.yaml"

    def import_(self, *options: str | Path) -> tuple[int, str, str]:
        result = peeringd(
            "import",
            "--kubeconfig",
            self.cluster.kubeconfig,
            "--cluster",
            "prod-1",
            "--adc",
            f"adc-1=127.0.0.1:{self.port}",
            "--username",
            self.adc.username,
            "--password-file",
            self.password_file,
            "--known-hosts",
            self.known_hosts,
            *options,
        )
        return result.returncode, result.stdout, result.stderr

    def run(self, command: str, *options: str) -> tuple[int, str, str]:
        result = peeringd(command, *options, "-f", self.state_file, "--kubeconfig", self.cluster.kubeconfig)
        return result.returncode, result.stdout, result.stderr

    def clear_journals(self) -> None:
        self.cluster.server.clear_journal()
        self.adc.clear_journal()

    def kube_writes(self) -> list[tuple[str, str | None, str | None]]:
        return [(e.verb, e.resource, e.name) for e in self.cluster.server.journal if e.verb in WRITE_VERBS]

    def config_lines(self) -> list[str]:
        """The lines the ADC got inside configuration sessions that change something."""
        return [
            e.text for e in self.adc.journal() if e.mode.startswith("config") and e.text not in NAVIGATION
        ]

    def other_lines(self) -> list[str]:
        """The lines the ADC got outside configuration mode that are neither reads nor a save."""
        return [
            e.text
            for e in self.adc.journal()
            if not e.mode.startswith("config")
            and not e.text.startswith(READS)
            and e.text not in {"configure terminal", "save ns config"}
        ]

    def peer(self, name: str = HAND_MADE) -> dict[str, object]:
        found = self.cluster.server.get(self.cluster.resource("bgppeers"), name)
        assert found is not None
        return found

    def peer_names(self) -> list[str]:
        return [
            item["metadata"]["name"]
            for item in self.cluster.server.objects(self.cluster.resource("bgppeers"))
        ]


@pytest.fixture
def setup_factory(
    cluster_factory: Callable[..., Cluster], adc: NetScalerSimulator, tmp_path: Path
) -> Callable[[str], Setup]:
    def build(api: str) -> Setup:
        cluster = cluster_factory(api)
        hand_made_peer(cluster)
        return Setup(cluster, adc, tmp_path)

    return build


def descriptions() -> list[str]:
    return [f"neighbor {address} description peeringd:prod-1:node-{i}" for i, address in enumerate(NODES, 1)]


def expected_file(setup: Setup) -> str:
    port = setup.adc.port
    file = setup.state_file
    ssh = {
        "host: 127.0.0.1": f"--adc adc-1=127.0.0.1:{port}",
        f"port: {port}": f"--adc adc-1=127.0.0.1:{port}",
        "username: nsroot": "--username",
        f"passwordFile: {setup.password_file}": "--password-file",
        f"knownHostsFile: {setup.known_hosts}": "--known-hosts",
    }
    width = max(map(len, ssh)) + 2
    ssh_lines = "".join(f"      {line.ljust(width)}# {source}\n" for line, source in ssh.items())
    return f"""\
# peeringd/v1 state written by `peeringd import` from what runs now: each comment
# says where its value came from. Review it, then take the objects over in place:
#   peeringd validate -f {file}
#   peeringd plan --adopt -f {file}     (adoptions only)
#   peeringd apply --adopt -f {file}

# Notes:
#   BGPPeer bgppeer-global-3040 stands for ADC adc-1; adopted, it keeps its name

apiVersion: peeringd/v1  # the contract peeringd reads
kind: PeeringState       # the contract peeringd reads
cluster:
  name: prod-1             # --cluster
  podCIDR: 192.168.0.0/16  # IPPool default-ipv4-ippool spec.cidr
  asNumber: 64512          # no BGPConfiguration default: Calico's default
  nodeToNodeMesh: true     # no BGPConfiguration default: Calico's default
  nodes:
    selector: ''  # every Node, less those excluded
    exclude: []   # every Node is every ADC's neighbour
adcs:
  - name: adc-1                   # --adc adc-1=127.0.0.1:{port}
    asNumber: 500                 # adc-1 show running-config: router bgp 500
    peerIP: 10.0.0.100            # BGPPeer bgppeer-global-3040 spec.peerIP
    platform: netscaler           # --platform
    maxPaths: {{ebgp: 8, ibgp: 8}}  # adc-1 show running-config: max-paths ebgp 8, ibgp 8
    installRoutes: true           # adc-1 show running-config: ns route-install bgp
    ssh:
{ssh_lines}"""


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_the_manual_setup_is_imported_adopted_and_released_without_a_configuration_change(
    setup_factory: Callable[[str], Setup], api: str
) -> None:
    """import reads only; plan --adopt adopts only; apply --adopt sends one description line per
    neighbour and one patch; a second apply sends nothing; release takes the marks off alone."""
    setup = setup_factory(api)
    setup.clear_journals()
    imported = setup.import_("-o", setup.state_file)
    import_writes = (setup.kube_writes(), setup.config_lines(), setup.other_lines())
    validated = peeringd("validate", "-f", setup.state_file)
    setup.clear_journals()
    planned = setup.run("plan", "--adopt", "-o", "json")
    setup.clear_journals()
    adopted = setup.run("apply", "--adopt", "--yes")
    adoption = (setup.kube_writes(), setup.config_lines(), setup.other_lines())
    owned = setup.peer()
    saved = setup.adc.saved().zebos.bgp
    setup.clear_journals()
    again = setup.run("apply", "--yes")
    again_writes = (setup.kube_writes(), setup.config_lines())
    setup.clear_journals()
    released = setup.run("release", "--yes")
    release = (setup.kube_writes(), setup.config_lines(), setup.other_lines())
    after = setup.run("plan")

    assert imported[0] == 0, imported[2]
    assert setup.state_file.read_text() == expected_file(setup)
    assert import_writes == ([], [], [])
    assert validated.returncode == 0, validated.stderr
    assert planned[0] == 2, planned[2]
    document = json.loads(planned[1])
    assert document["counts"] == {"create": 0, "update": 1, "delete": 0, "adopt": 4, "release": 0}
    assert {(c["kind"], c["action"]) for c in document["changes"]} == {
        ("neighbour", "adopt"),
        ("save", "update"),
        ("bgppeer", "adopt"),
    }
    assert adopted[0] == 0, adopted[1] + adopted[2]
    assert "Plan: 4 to adopt, 0 to add, 1 to change, 0 to remove." in adopted[1]
    assert adoption == ([("patch", "bgppeers", HAND_MADE)], descriptions(), [])
    assert owned["metadata"]["labels"] == {ownership.MANAGED_BY_LABEL: "peeringd"}  # type: ignore[index]
    assert owned["metadata"]["annotations"][ownership.ADC_ANNOTATION] == "adc-1"  # type: ignore[index]
    assert owned["spec"] == {"peerIP": "10.0.0.100", "asNumber": 500}
    assert setup.peer_names() == [HAND_MADE]
    assert saved is not None
    assert [n.description for n in saved.neighbors.values()] == [
        f"peeringd:prod-1:node-{i}" for i in (1, 2, 3)
    ]
    assert (again[0], again[1]) == (0, "No changes: live state matches the file.\n")
    assert again_writes == ([], [])
    assert released[0] == 0, released[1] + released[2]
    assert "Plan: 0 to add, 1 to change, 0 to remove, 4 to release." in released[1]
    assert release == (
        [("patch", "bgppeers", HAND_MADE)],
        [f"no neighbor {address} description" for address in NODES],
        [],
    )
    assert setup.peer()["metadata"].get("labels", {}) == {}  # type: ignore[attr-defined]
    assert setup.peer()["spec"] == {"peerIP": "10.0.0.100", "asNumber": 500}
    assert after[0] == 0, after[2]
    assert after[1].count("was not made by peeringd for cluster prod-1 and peers as wanted") == 3
    assert f"BGPPeer {HAND_MADE} (not peeringd's) already peers with 10.0.0.100" in after[1]


def test_policy_adopt_in_the_file_adopts_and_no_adopt_overrides_it(
    setup_factory: Callable[[str], Setup],
) -> None:
    setup = setup_factory("v1")
    assert setup.import_("-o", setup.state_file)[0] == 0
    setup.state_file.write_text(setup.state_file.read_text() + "policy:\n  adopt: true\n")

    overridden = setup.run("plan", "--no-adopt")
    planned = setup.run("plan")

    assert overridden[0] == 0, overridden[2]
    assert "Plan: 4 to adopt, 0 to add, 1 to change, 0 to remove." in planned[1]


def test_a_setup_v1_cannot_describe_fails_the_import_and_names_each_object(
    setup_factory: Callable[[str], Setup],
) -> None:
    """A node-specific peer, a peer at an ADC that was not named and a neighbour that is no node:
    exit 1 naming each, and no file; --partial writes the rest, with them as comments."""
    setup = setup_factory("v1")
    hand_made_peer(setup.cluster, "tor-1", peerIP="10.0.0.1", asNumber=65000, node="node-1")
    hand_made_peer(setup.cluster, "bgppeer-global-4050", peerIP="10.0.0.200", asNumber=600)
    setup.adc.load_zebos(SEED_ZEBOS.replace("!\n", " neighbor 10.0.0.99 remote-as 65099\n!\n"))
    refused = setup.import_("-o", setup.state_file)
    partial = setup.import_("-o", setup.state_file, "--partial")
    written = setup.state_file.read_text()
    planned = setup.run("plan", "--adopt")

    assert refused[0] == 1
    assert [line for line in refused[2].splitlines() if line.startswith("cannot describe")] == [
        "cannot describe: BGPPeer tor-1: is node-specific (node node-1): v1 describes global peers only",
        "cannot describe: BGPPeer bgppeer-global-4050: peers with 10.0.0.200 (AS 600), which is no ADC "
        "named with --adc",
        "cannot describe: ADC adc-1: neighbor 10.0.0.99: is no Kubernetes node: v1 describes neighbours "
        "that are nodes",
    ]
    assert partial[0] == 0, partial[2]
    assert (
        "# Not described (peeringd/v1 cannot say it; peeringd leaves it as it is):\n"
        "#   BGPPeer tor-1: is node-specific (node node-1): v1 describes global peers only\n"
        "#   BGPPeer bgppeer-global-4050: peers with 10.0.0.200 (AS 600), which is no ADC named with --adc\n"
        "#   ADC adc-1: neighbor 10.0.0.99: is no Kubernetes node: v1 describes neighbours that are nodes\n"
    ) in written
    assert YAML(typ="safe").load(written)["adcs"][0]["peerIP"] == "10.0.0.100"
    assert planned[0] == 2, planned[2]
    assert "Plan: 4 to adopt, 0 to add, 1 to change, 0 to remove." in planned[1]


def test_the_import_never_overwrites_a_file(setup_factory: Callable[[str], Setup]) -> None:
    setup = setup_factory("v1")
    setup.state_file.write_text("mine\n")

    code, _, stderr = setup.import_("-o", setup.state_file)

    assert (code, stderr) == (1, f"error: {setup.state_file} exists; not overwritten\n")
    assert setup.state_file.read_text() == "mine\n"


def test_an_unreachable_adc_is_named_and_fails_the_import(setup_factory: Callable[[str], Setup]) -> None:
    setup = setup_factory("v1")
    port = setup.adc.port
    setup.adc.stop()

    code, stdout, stderr = setup.import_()

    assert (code, stdout) == (1, "")
    assert f"cannot describe: ADC adc-1: could not be read: cannot connect to 127.0.0.1:{port}" in stderr


def test_the_document_goes_to_stdout_without_a_file(setup_factory: Callable[[str], Setup]) -> None:
    code, stdout, _ = setup_factory("v1").import_()

    assert code == 0
    assert "#   peeringd plan --adopt -f FILE     (adoptions only)\n" in stdout
    assert YAML(typ="safe").load(stdout)["cluster"]["name"] == "prod-1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--adc", "adc-1=10.0.0.1", "--adc", "adc-1=10.0.0.2"], "Error: --adc names adc-1 more than once"),
        (["--adc", "adc-1=bad_host"], "Error: host: 'bad_host' is not a host name or IP address"),
        (["--adc", "adc-1=10.0.0.1:99999"], "'adc-1=10.0.0.1:99999': '99999' is not a port"),
        (["--adc", "adc-1"], "'adc-1' is not NAME=HOST[:PORT]"),
        (["--adc", "adc-1=10.0.0.1", "--peer-ip", "adc-2=10.0.0.9"], "--peer-ip names adc-2, which no --adc"),
    ],
)
def test_bad_import_options_are_refused_before_anything_is_read(
    tmp_path: Path, options: list[str], message: str
) -> None:
    password = tmp_path / "password"
    password.write_text("x\n")
    result = peeringd(
        "import", "--cluster", "prod-1", "--username", "nsroot", "--password-file", password, *options
    )

    assert result.returncode == 2
    assert message in result.stderr
