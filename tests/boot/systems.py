"""What the daemon under test talks to, and what it is installed from.

The lab's API server (Calico's CRDs, three nodes, the default IPPool) and a NetScaler
simulator, both on 127.0.0.1 of the network namespace they are started in: the host's, or one
a test made (a thread enters it, starts them, and their own threads stay there), plus the
secrets the daemon needs to reach them. And a copy of this working tree, as a clone would
have it, to install from.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from peeringd.lab.kubeapi import KubeApiServer
from peeringd.lab.nssim import NetScalerSimulator, write_known_hosts
from tests.conftest import CRD_SOURCE, node_object, pool_object
from tests.runtime import daemon_harness
from tests.support import REPO

__all__ = [
    "NODES",
    "Systems",
    "copy_working_tree",
    "in_namespace",
    "network_namespace",
    "pip_settings",
    "systems",
]

NODES = {"node-1": "10.0.0.11", "node-2": "10.0.0.12", "node-3": "10.0.0.13"}
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


@dataclass(frozen=True)
class Systems:
    """The running API server and simulator."""

    api: KubeApiServer
    adc: NetScalerSimulator

    def neighbours(self) -> list[str]:
        """The neighbours in the simulator's running `router bgp`."""
        router = self.adc.running().zebos.bgp
        return sorted(router.neighbors) if router else []

    def max_paths_ebgp(self) -> int | None:
        router = self.adc.running().zebos.bgp
        return router.max_paths_ebgp if router else None

    def write_secrets(self, folder: Path) -> None:
        """``kubeconfig``, ``known_hosts`` and ``adc-1.password`` in ``folder``, as an operator
        would have them before installing them as credentials or secrets."""
        folder.mkdir(parents=True, exist_ok=True)
        self.api.write_kubeconfig(folder / "kubeconfig")
        write_known_hosts(folder / "known_hosts", [self.adc])
        (folder / "adc-1.password").write_text(self.adc.password + "\n")

    def state_text(self, secrets: str, **fields: object) -> str:
        """A state file for these systems whose secret files are in ``secrets`` (as the daemon
        sees that directory)."""
        return daemon_harness.state_text(self.adc, Path(secrets), **fields)  # type: ignore[arg-type]


@contextlib.contextmanager
def systems(workdir: Path) -> Iterator[Systems]:
    """The API server and the simulator, started in the calling thread's network namespace."""
    api = KubeApiServer(CRD_SOURCE, "v1")
    api.start()
    try:
        api.put(pool_object("crd.projectcalico.org/v1"))
        for name, address in NODES.items():
            api.put(node_object(name, address))
        with NetScalerSimulator(host_key_path=workdir / "adc-host-key") as adc:
            yield Systems(api, adc)
    finally:
        api.stop()


@contextlib.contextmanager
def network_namespace(name: str) -> Iterator[Path]:
    """A network namespace with only its loopback, up; deleted afterwards."""
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30)


def in_namespace(namespace: Path, work: Callable[[], _T]) -> _T:
    """``work()`` run by a thread that entered ``namespace`` (setns(2) moves only the calling
    thread; threads it starts are born there, and it ends without ever coming back)."""
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def enter_and_work() -> None:
        try:
            descriptor = os.open(namespace, os.O_RDONLY)
            try:
                if _libc.setns(descriptor, _CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns {namespace}: {os.strerror(error)}")
            finally:
                os.close(descriptor)
            outcome.append(work())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    thread = threading.Thread(target=enter_and_work, name=f"in {namespace.name}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


_libc = ctypes.CDLL(None, use_errno=True)


def copy_working_tree(destination: Path) -> None:
    """The files a clone of this working tree would hold (tracked and new, not ignored ones),
    with their modes, into ``destination``."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def pip_settings(root: Path, where: str = "/root/pip-ca.crt") -> dict[str, str]:
    """The environment for pip inside a container at ``root``: trust what this host's pip
    trusts (a TLS-inspecting proxy's CA, say; copied to ``where``) and use its index."""
    bundle = os.environ.get("PIP_CERT") or ssl.get_default_verify_paths().cafile
    settings = {}
    if bundle and Path(bundle).is_file():
        shutil.copyfile(bundle, root / where.lstrip("/"))
        settings["PIP_CERT"] = where
    if os.environ.get("PIP_INDEX_URL", "").startswith(("http://", "https://")):
        settings["PIP_INDEX_URL"] = os.environ["PIP_INDEX_URL"]
    return settings
