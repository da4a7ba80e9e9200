"""BGP passwords through every command against the lab: set on both sides, shown nowhere.

A known password goes through validate, plan (text and JSON), apply, status, snapshot,
import, a daemon's passes (with a rotation) and release; its text, and its base64 form,
must appear in no output, log line, event or metric, while the ADC and the Secret hold it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ruamel.yaml

from peeringd.adapters import password_secret
from peeringd.core import secret
from peeringd.lab.nssim import NetScalerSimulator
from tests.conftest import Cluster
from tests.runtime import daemon_harness
from tests.runtime.daemon_harness import DaemonProcess
from tests.runtime.test_cli import peeringd

KNOWN = "Canary-7f3a9c-Pa55"
ROTATED = "Canary-0b81de-Rot8"
# The lab has no calico-system namespace: calico-node's is kube-system, as in a manifest install.
NAMESPACE = "kube-system"


class Outputs:
    """Everything the commands printed, to search for the secrets at the end."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def run(self, *args: str | Path) -> tuple[int, str]:
        result = peeringd(*args)
        self.texts += [result.stdout, result.stderr]
        return result.returncode, result.stdout + result.stderr

    def leaks(self, *secrets: str) -> list[str]:
        forms = [form for value in secrets for form in (value, base64.b64encode(value.encode()).decode())]
        return [form for form in forms for text in self.texts if form in text]


@pytest.fixture
def adc(tmp_path: Path) -> Iterator[NetScalerSimulator]:
    with NetScalerSimulator(host_key_path=tmp_path / "host-key") as simulator:
        yield simulator


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    yield from daemon_harness.daemons(tmp_path)


def state_file(folder: Path, adc: NetScalerSimulator) -> tuple[Path, Path]:
    """The lab's state file with a BGP password for adc-1, and the password's file."""
    secrets = daemon_harness.write_secrets(adc, folder / "secrets")
    password = secrets / "adc-1.bgp"
    password.write_text(KNOWN + "\n")
    text = daemon_harness.state_text(adc, secrets).replace(
        "    ssh: {", f"    bgpPassword: {{file: {password.name}}}\n    ssh: {{", 1
    )
    path = secrets / "peering.yaml"  # beside the password: its path is relative
    path.write_text(text)
    return path, password


def allow_calico_node(cluster: Cluster) -> None:
    """What `peeringd rbac` prints for calico-node, applied as kubectl would."""
    for document in ruamel.yaml.YAML(typ="safe").load_all(password_secret.rbac_manifest(NAMESPACE)):
        cluster.server.put(document)


def device_passwords(adc: NetScalerSimulator) -> set[str | None]:
    router = adc.running().zebos.bgp
    assert router is not None
    return {neighbour.password for neighbour in router.neighbors.values()}


def stored_password(cluster: Cluster) -> str:
    stored: Any = cluster.server.get("secrets", secret.SECRET_NAME, NAMESPACE)
    assert stored is not None
    return base64.b64decode(stored["data"]["adc-1"]).decode()


def test_every_command_keeps_the_password_to_itself(
    cluster: Cluster, adc: NetScalerSimulator, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    path, password = state_file(tmp_path, adc)
    kube = ("--kubeconfig", cluster.kubeconfig)
    out = Outputs()

    assert out.run("validate", "-f", path)[0] == 0
    code, text = out.run("plan", "-f", path, *kube)
    assert code == 1, text  # an error finding: nothing can be applied
    assert "calico-node (system:serviceaccount:kube-system:calico-node) cannot read Secret" in text
    assert out.run("apply", "--yes", "-f", path, *kube)[0] == 1  # refused: nothing written
    assert cluster.server.get("secrets", secret.SECRET_NAME, NAMESPACE) is None

    allow_calico_node(cluster)
    code, text = out.run("plan", "-f", path, *kube)
    assert code == 2, text
    assert "password (set)" in text
    code, text = out.run("plan", "-o", "json", "-f", path, *kube)
    assert code == 2
    assert '"password": "(set)"' in text
    assert out.run("apply", "--yes", "-f", path, *kube)[0] == 0
    assert device_passwords(adc) == {KNOWN}
    assert stored_password(cluster) == KNOWN
    peer: Any = cluster.server.get(cluster.resource("bgppeers"), "adc-1")
    assert peer["spec"]["password"] == {"secretKeyRef": {"name": secret.SECRET_NAME, "key": "adc-1"}}
    assert out.run("plan", "-f", path, *kube)[0] == 0
    out.run("status", "--update-period", "1", "--keep", "0", "-f", path, *kube)
    code, text = out.run("snapshot", "-f", path, *kube)
    assert code == 0
    assert '"password": "(set)"' in text
    out.run(
        "import", *kube, "--cluster", "prod-1", "--adc", f"adc-1=127.0.0.1:{adc.port}",
        "--username", adc.username, "--password-file", path.parent / "adc-1.password",
        "--known-hosts", path.parent / "known_hosts", "--partial",
    )  # fmt: skip

    daemon = daemons(path, cluster.kubeconfig)
    daemon.wait_for_event("pass done")
    # A rotation: the state file is unchanged; the watched folder holds the password file too.
    password.write_text(ROTATED + "\n")
    daemon.wait_for_event("state file changed")
    daemon.wait_for_event("pass done", count=2)
    metrics = json.dumps(daemon.metrics())
    assert daemon.stop() == 0
    assert device_passwords(adc) == {ROTATED}
    assert stored_password(cluster) == ROTATED
    applied = [event for event in daemon.events("change applied") if "password" in json.dumps(event)]
    assert applied, "the rotation is in the change events"

    code, text = out.run("release", "--yes", "-f", path, *kube)
    assert code == 0, text
    out.texts += [daemon.log.read_text(), metrics]
    assert out.leaks(KNOWN, ROTATED) == []


def test_a_rotation_the_adc_did_not_take_leaves_calicos_password_as_it_was(
    cluster: Cluster, adc: NetScalerSimulator, tmp_path: Path
) -> None:
    """Both ends keep the password they share: the sessions stay up until the ADC takes the new one."""
    path, password = state_file(tmp_path, adc)
    allow_calico_node(cluster)
    kube = ("--kubeconfig", cluster.kubeconfig)
    assert peeringd("apply", "--yes", "-f", path, *kube).returncode == 0
    password.write_text(ROTATED + "\n")
    adc.stop()

    failed = peeringd("apply", "--yes", "-f", path, *kube)

    assert failed.returncode == 1
    assert stored_password(cluster) == KNOWN
