"""NetScaler simulators in processes of their own, for benchmarks.

A simulator in the benchmark's process would share its interpreter (and its
lock) with the code being measured; a real ADC is a machine of its own. Each
``SimulatorProcess`` runs one ``NetScalerSimulator`` in a child process and
answers the few questions a benchmark asks over a pipe.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
from pathlib import Path
from typing import Any

from peeringd.core import ownership
from peeringd.lab.nssim import BgpRouter, Neighbor, NetScalerSimulator
from peeringd.lab.nssim import zebos as simulated_zebos

__all__ = ["SimulatorProcess"]

_START_SECONDS = 60


class SimulatorProcess:
    """One simulated ADC in a child process: its address, and what a benchmark asks of it."""

    def __init__(self, folder: Path, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, folder / f"{name}.key"), daemon=True)
        self._process.start()
        if not self._pipe.poll(_START_SECONDS):
            raise RuntimeError(f"the simulator {name} did not start")
        self.name = name
        self.host, self.port, self.username, self.password, self.known_hosts_entry = self._pipe.recv()

    @property
    def pid(self) -> int:
        """The child process's id (its CPU time is the simulated ADC's)."""
        pid = self._process.pid
        assert pid is not None, "started in __init__"
        return pid

    def _ask(self, *request: Any) -> Any:
        self._pipe.send(request)
        return self._pipe.recv()

    def empty(self) -> None:
        """A fresh ADC: no BGP configuration, the BGP feature off, nothing saved."""
        self._ask("empty")

    def converged(self, as_number: int, addresses: list[str], cluster: str, max_paths: int) -> None:
        """The configuration peeringd leaves for these node addresses (node-i at index i), saved."""
        self._ask("converged", as_number, addresses, cluster, max_paths)

    def neighbours(self) -> int:
        return int(self._ask("neighbours"))

    def has_neighbour(self, address: str) -> bool:
        return bool(self._ask("has", address))

    def lines(self) -> list[str]:
        """The non-blank lines received since the last ``clear``."""
        lines: list[str] = self._ask("lines")
        return lines

    def clear(self) -> None:
        self._ask("clear")

    def answer_shows_late(self, seconds: float) -> None:
        """Answer every ``show`` command ``seconds`` late (0: at once), as a device whose
        management CPU takes its time to print thousands of neighbours."""
        self._ask("late", seconds)

    def stop(self) -> None:
        if self._process.is_alive():
            self._ask("stop")
        self._process.join(10)


def _serve(pipe: multiprocessing.connection.Connection, host_key: Path) -> None:
    with NetScalerSimulator(host_key_path=host_key) as simulator:
        pipe.send(
            (
                simulator.host,
                simulator.port,
                simulator.username,
                simulator.password,
                simulator.known_hosts_entry(),
            )
        )
        while True:
            request, *args = pipe.recv()
            if request == "stop":
                pipe.send(None)
                return
            pipe.send(_answer(simulator, request, args))


def _answer(simulator: NetScalerSimulator, request: str, args: list[Any]) -> Any:
    if request == "empty":
        simulator.set_zebos(simulated_zebos.default_config(simulator.profile.interface_address))
        simulator.set_feature("BGP", False)
        simulator.save()
        return None
    if request == "converged":
        as_number, addresses, cluster, max_paths = args
        config = simulated_zebos.default_config(simulator.profile.interface_address)
        config.route_install_bgp = True
        config.bgp = BgpRouter(
            asn=as_number,
            neighbors={
                address: Neighbor(address, 64512, ownership.description(cluster, f"node-{index:05d}"))
                for index, address in enumerate(addresses)
            },
            max_paths_ebgp=max_paths,
            max_paths_ibgp=max_paths,
        )
        simulator.set_zebos(config)
        simulator.set_feature("BGP", True)
        simulator.save()
        return None
    if request == "neighbours":
        return len(simulator.neighbor_addresses())
    if request == "has":
        return args[0] in simulator.neighbor_addresses()
    if request == "lines":
        return [entry.text for entry in simulator.journal() if entry.text.strip()]
    if request == "clear":
        simulator.clear_journal()
        return None
    if request == "late":
        simulator.clear_faults()
        if args[0]:
            simulator.delay_replies(args[0], pattern=r"show .*")
        return None
    raise ValueError(f"unknown request {request!r}")
