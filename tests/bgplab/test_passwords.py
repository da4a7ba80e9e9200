"""BGP session passwords with real BGP: FRR's `neighbor X password` and the password calico-node
renders into BIRD (TCP MD5 in the nodes' network namespaces), set, broken and rotated through
the real CLI."""

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from peeringd.adapters import password_secret
from peeringd.core import secret, status

from . import poll
from .conftest import skip_unless_lab_can_run
from .test_end_to_end import GLOBAL_PEER, EndToEnd, connections, end_to_end

pytestmark = pytest.mark.lab

PASSWORD = "Lab-MD5-Pa55"
ROTATED = "Lab-MD5-R0tated"
# FRR retries every 5 s; BIRD backs off after session errors (error wait time 5..30 s).
ESTABLISHED_WITHIN = 60.0


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndToEnd]:
    """The end-to-end environment, its ADC with a BGP password, calico-node allowed to read it."""
    skip_unless_lab_can_run()
    with end_to_end(tmp_path_factory.mktemp("passwords")) as environment:
        password_file = environment.workdir / "bgp.password"
        password_file.write_text(PASSWORD + "\n")
        text = environment.state_file.read_text()
        environment.state_file.write_text(
            text.replace("    ssh:\n", f"    bgpPassword: {{file: {password_file}}}\n    ssh:\n", 1)
        )
        for document in YAML(typ="safe").load_all(password_secret.rbac_manifest("kube-system")):
            environment.server.put(document)
        yield environment


def password_file(e2e: EndToEnd) -> Path:
    return e2e.workdir / "bgp.password"


def sessions(e2e: EndToEnd) -> dict[str, str]:
    """FRR's state of each node's session."""
    return e2e.lab.router.frr.neighbour_states()


def all_established(e2e: EndToEnd) -> None:
    nodes = e2e.kubernetes_nodes()
    poll.until(
        lambda: sessions(e2e),
        lambda found: all(found.get(str(node.address)) == "Established" for node in nodes),
        timeout=ESTABLISHED_WITHIN,
        what="every session Established with the password",
    )
    for node in nodes:
        node.bird.wait_for_protocol(GLOBAL_PEER, timeout=ESTABLISHED_WITHIN)


def apply(e2e: EndToEnd) -> subprocess.CompletedProcess[str]:
    result = e2e.peeringd("apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_sessions_come_up_with_the_password_on_both_ends(e2e: EndToEnd) -> None:
    apply(e2e)

    all_established(e2e)
    config = e2e.lab.router.frr.vtysh("show running-config")
    for node in e2e.kubernetes_nodes():
        assert f" neighbor {node.address} password {PASSWORD}\n" in config
        assert f'password "{PASSWORD}";' in (node.bird.config_path.read_text())
    assert e2e.peeringd("plan").returncode == 0


def test_a_wrong_password_on_one_end_keeps_the_sessions_down_and_status_says_so(e2e: EndToEnd) -> None:
    stored = e2e.server.get("secrets", secret.SECRET_NAME, "kube-system")
    assert stored is not None
    stored["data"]["frr-1"] = base64.b64encode(b"Not-the-one").decode()
    e2e.server.put(stored)  # calico-node's end now differs from the router's

    nodes = e2e.kubernetes_nodes()
    poll.until(
        lambda: sessions(e2e),
        lambda found: not any(found.get(str(node.address)) == "Established" for node in nodes),
        timeout=ESTABLISHED_WITHIN,
        what="every session down",
    )
    result = e2e.peeringd("status", "--update-period", "1")

    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout.count(f"down ({status.PASSWORD_HINT})") == len(nodes)

    apply(e2e)  # peeringd's Secret is put back: the sessions return
    all_established(e2e)


def test_a_rotated_password_changes_both_ends_in_one_pass_each_session_resetting_once(
    e2e: EndToEnd,
) -> None:
    before = connections(e2e)
    password_file(e2e).write_text(ROTATED + "\n")

    result = apply(e2e)

    assert "password (changed)" in result.stdout
    assert ROTATED not in result.stdout + result.stderr
    all_established(e2e)
    after = connections(e2e)
    assert {
        address: after[address][1] - dropped for address, (_, dropped) in before.items()
    } == dict.fromkeys(before, 1)
    config = e2e.lab.router.frr.vtysh("show running-config")
    assert all(f" neighbor {node.address} password {ROTATED}\n" in config for node in e2e.kubernetes_nodes())
    assert e2e.peeringd("plan").returncode == 0
