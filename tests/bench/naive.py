"""The yardstick: the job done the naive way, a full push on every pass.

What a team would write without peeringd, with the same libraries: every pass
lists all Nodes (the client's models, as its documentation shows), rewrites
each ADC's global BGPPeer (GET, then PUT or create), and re-sends every
neighbour line to each ADC, one ADC after another, with netmiko's
``send_config_set`` (which waits for each line's echo and prompt). It keeps
one SSH session per ADC across passes (a generous naive script), and does less
than peeringd: it neither verifies, nor saves, nor removes neighbours of nodes
that left.

It is a benchmark's yardstick, not a product: it stands alone (nothing of
peeringd), and ``python -m tests.bench.naive`` runs it as a process every
``--interval`` seconds, for the benchmark to measure at rest.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from netmiko import ConnectHandler

__all__ = ["Adc", "NaivePush", "main"]

GROUP, VERSION = "crd.projectcalico.org", "v1"
ADDRESS_ANNOTATION = "projectcalico.org/IPv4Address"


@dataclass(frozen=True)
class Adc:
    """One ADC: where the nodes peer with it, and how to log in."""

    name: str
    as_number: int
    peer_ip: str
    host: str
    port: int
    username: str
    password: str
    known_hosts: Path


class NaivePush:
    """A full push of the cluster's nodes to every ADC, on each call of ``run_pass``."""

    def __init__(self, kubeconfig: Path, adcs: Sequence[Adc], cluster_as: int) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self._api = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._custom = kubernetes.client.CustomObjectsApi(self._api)
        self._adcs = tuple(adcs)
        self._cluster_as = cluster_as
        self._sessions: dict[str, Any] = {}
        self.lines_sent = 0  # configuration lines, over every pass

    def close(self) -> None:
        for session in self._sessions.values():
            session.disconnect()
        self._api.close()

    def run_pass(self) -> None:
        addresses = [self._address(node) for node in self._core.list_node().items]
        for adc in self._adcs:
            self._push(adc, [address for address in addresses if address])
            self._write_peer(adc)

    @staticmethod
    def _address(node: Any) -> str | None:
        annotation = (node.metadata.annotations or {}).get(ADDRESS_ANNOTATION)
        if annotation:
            return str(annotation).split("/")[0]
        internal = [a.address for a in node.status.addresses or () if a.type == "InternalIP"]
        return internal[0] if internal else None

    def _push(self, adc: Adc, addresses: list[str]) -> None:
        session = self._session(adc)
        lines = [f"router bgp {adc.as_number}"]
        for address in addresses:
            lines.append(f"neighbor {address} remote-as {self._cluster_as}")
            lines.append(f"neighbor {address} description naive:{address}")
        session.send_command("vtysh", expect_string=r"#")
        session.send_command("configure terminal", expect_string=r"#")
        session.send_config_set(lines, enter_config_mode=False, exit_config_mode=False, read_timeout=60)
        session.send_command("end", expect_string=r"#")
        session.send_command("exit", expect_string=r">")
        self.lines_sent += len(lines)

    def _session(self, adc: Adc) -> Any:
        if adc.name not in self._sessions:
            self._sessions[adc.name] = ConnectHandler(
                device_type="netscaler",
                host=adc.host,
                port=adc.port,
                username=adc.username,
                password=adc.password,
                ssh_strict=True,
                system_host_keys=False,
                alt_host_keys=True,
                alt_key_file=str(adc.known_hosts),
                allow_agent=False,
            )
        return self._sessions[adc.name]

    def _write_peer(self, adc: Adc) -> None:
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BGPPeer",
            "metadata": {"name": adc.name},
            "spec": {"peerIP": adc.peer_ip, "asNumber": adc.as_number},
        }
        try:
            current: Any = self._custom.get_cluster_custom_object(GROUP, VERSION, "bgppeers", adc.name)
        except ApiException as error:
            if error.status != 404:
                raise
            self._custom.create_cluster_custom_object(GROUP, VERSION, "bgppeers", body)
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self._custom.replace_cluster_custom_object(GROUP, VERSION, "bgppeers", adc.name, body)


def main(argv: Sequence[str] | None = None) -> int:
    """Run passes every ``--interval`` seconds until SIGTERM; each ``--adc`` is
    ``name,as,peer_ip,host,port,username,password,known_hosts``."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.naive", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--cluster-as", type=int, default=64512)
    parser.add_argument("--adc", action="append", required=True)
    parser.add_argument("--interval", type=float, default=60.0)
    options = parser.parse_args(argv)
    adcs = []
    for text in options.adc:
        name, as_number, peer_ip, host, port, username, password, known_hosts = text.split(",")
        adcs.append(
            Adc(name, int(as_number), peer_ip, host, int(port), username, password, Path(known_hosts))
        )
    stop = threading.Event()

    def stopping(_: int, __: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    naive = NaivePush(options.kubeconfig, adcs, options.cluster_as)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            naive.run_pass()
            print(f"pass done {time.perf_counter() - started:.3f}", flush=True)
            stop.wait(options.interval)
    finally:
        naive.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
