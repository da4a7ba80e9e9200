"""Fixtures: running NetScaler simulators and netmiko sessions that trust their host keys."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netmiko import ConnectHandler

from peeringd.lab.nssim import DeviceProfile, NetScalerSimulator, write_known_hosts

StartSimulator = Callable[..., NetScalerSimulator]
Connect = Callable[..., Any]


@pytest.fixture
def start() -> Iterator[StartSimulator]:
    """Start simulators (arguments as NetScalerSimulator's); all stop after the test."""
    with contextlib.ExitStack() as stack:

        def start_simulator(profile: DeviceProfile | None = None, **options: Any) -> NetScalerSimulator:
            return stack.enter_context(NetScalerSimulator(profile, **options))

        yield start_simulator


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Connect]:
    """Log in to a simulator with netmiko's netscaler driver, checking the host key strictly.

    Keyword arguments override ConnectHandler's; every session is closed after the test.
    """
    sessions: list[Any] = []

    def open_session(simulator: NetScalerSimulator, **options: Any) -> Any:
        known_hosts = tmp_path / f"known_hosts-{simulator.port}"
        if not known_hosts.exists():
            write_known_hosts(known_hosts, [simulator])
        parameters: dict[str, Any] = {
            "device_type": "netscaler",
            "host": simulator.host,
            "port": simulator.port,
            "username": simulator.username,
            "password": simulator.password,
            "ssh_strict": True,
            "system_host_keys": False,
            "alt_host_keys": True,
            "alt_key_file": str(known_hosts),
            "conn_timeout": 5,
        }
        parameters.update(options)
        session = ConnectHandler(**parameters)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.disconnect()
