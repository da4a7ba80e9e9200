"""FRR (zebra + bgpd) in one lab namespace, and the helpers tests use to look at it.

The instance has its own config dir, vty socket dir, zebra socket and pid files inside the
lab's work dir, so it never meets the machine's own FRR (if any) or another lab run. Daemons
run as user frr (FRR refuses `-u root` unless root is in frrvty). The router starts without
`router bgp`: the daemon under test, or a test through `configure`, sets BGP up.

Not here: anything that decides what BGP config is right; that is the daemon's job.
"""

import grp
import json
import os
import pwd
from pathlib import Path
from typing import Any

from . import poll
from .errors import LabError
from .netns import Namespace
from .process import Daemon, run

__all__ = ["FrrRouter"]

_FRR_LIBEXEC = Path("/usr/lib/frr")
_VTYSH = "/usr/bin/vtysh"
_FRR_USER = "frr"
_VTY_GROUP = "frrvty"
_START_TIMEOUT = 15.0
_VTYSH_TIMEOUT = 20.0


class FrrRouter:
    """An FRR instance in `namespace` whose files all live under `workdir`."""

    def __init__(self, namespace: Namespace, workdir: Path) -> None:
        self.namespace = namespace
        self.config_dir = workdir / "frr"
        self._workdir = workdir
        self._daemons: list[Daemon] = []

    @property
    def vtysh_command(self) -> list[str]:
        """vtysh bound to this instance (for the SSH login; run it inside the namespace)."""
        directory = str(self.config_dir)
        return [_VTYSH, "--vty_socket", directory, "--config_dir", directory]

    def start(self) -> None:
        """Start zebra, then bgpd, and wait until vtysh reaches both."""
        self._prepare_config_dir()
        self._start_daemon("zebra")
        poll.until(self._zebra_ready, bool, timeout=_START_TIMEOUT, what="zebra's sockets appear")
        self._start_daemon("bgpd")
        poll.until(
            self._vtysh_reaches_daemons,
            bool,
            timeout=_START_TIMEOUT,
            what="vtysh reaches zebra and bgpd",
        )

    def stop(self) -> None:
        """Stop bgpd, then zebra (SIGTERM lets bgpd send Cease to its peers)."""
        while self._daemons:
            self._daemons.pop().stop()

    def vtysh(self, *commands: str) -> str:
        """Run vtysh commands (one `-c` each, in order) and return the output."""
        if not commands:
            raise ValueError("vtysh needs at least one command")
        argv = list(self.vtysh_command)
        for command in commands:
            argv += ["-c", command]
        return run(self.namespace.command(argv), timeout=_VTYSH_TIMEOUT)

    def configure(self, *lines: str) -> str:
        """Apply config lines in `configure terminal` (indentation is not needed)."""
        return self.vtysh("configure terminal", *lines)

    def bgp_summary(self) -> dict[str, Any]:
        """`show ip bgp summary json`, parsed ({} while no `router bgp` exists)."""
        summary: dict[str, Any] = json.loads(self.vtysh("show ip bgp summary json") or "{}")
        return summary

    def neighbour_states(self) -> dict[str, str]:
        """Each IPv4 unicast neighbour's BGP state, e.g. {"10.200.0.11": "Established"}."""
        peers = self.bgp_summary().get("ipv4Unicast", {}).get("peers", {})
        return {address: str(peer.get("state", "")) for address, peer in peers.items()}

    def bgp_routes(self) -> dict[str, frozenset[str]]:
        """The kernel routes zebra installed from BGP in the router's namespace: prefix -> gateways."""
        routes = self.namespace.routes()
        return {route.destination: route.gateways for route in routes if route.protocol == "bgp"}

    def wait_for_neighbour(self, address: str, *, established: bool = True, timeout: float = 30.0) -> str:
        """Poll until the neighbour is Established (or, with established=False, is not)."""

        def state() -> str:
            for daemon in self._daemons:
                daemon.check_running()
            return self.neighbour_states().get(address, "absent")

        wanted = "Established" if established else "not Established"
        return poll.until(
            state,
            lambda seen: (seen == "Established") == established,
            timeout=timeout,
            what=f"FRR neighbour {address} {wanted}",
        )

    def _prepare_config_dir(self) -> None:
        frr = pwd.getpwnam(_FRR_USER)
        vty_group = grp.getgrnam(_VTY_GROUP)
        self.config_dir.mkdir(mode=0o770)
        # Group frrvty may reach the vty sockets and write frr.conf (`write memory`).
        os.chown(self.config_dir, frr.pw_uid, vty_group.gr_gid)
        self.config_dir.chmod(0o770)
        for daemon in ("zebra", "bgpd"):
            self._write(self.config_dir / f"{daemon}.conf", "", mode=0o640)
        vtysh_conf = "service integrated-vtysh-config\n"
        self._write(self.config_dir / "vtysh.conf", vtysh_conf, mode=0o644)

    def _write(self, path: Path, text: str, *, mode: int) -> None:
        frr = pwd.getpwnam(_FRR_USER)
        path.write_text(text)
        os.chown(path, frr.pw_uid, frr.pw_gid)
        path.chmod(mode)

    def _start_daemon(self, name: str) -> None:
        directory = self.config_dir
        argv = [
            str(_FRR_LIBEXEC / name),
            "--user", _FRR_USER, "--group", _FRR_USER,
            "--config_file", str(directory / f"{name}.conf"),
            "--pid_file", str(directory / f"{name}.pid"),
            "--socket", str(directory / "zserv.api"),
            "--vty_socket", str(directory),
            "--vty_port", "0",
            "--limit-fds", "1024",
            "--log", "stdout",
        ]  # fmt: skip
        daemon = Daemon(
            f"{self.namespace.name}/{name}",
            self.namespace.command(argv),
            log_path=self._workdir / f"{name}.log",
            namespace_path=self.namespace.path,
            pid_file=directory / f"{name}.pid",
        )
        self._daemons.append(daemon)
        daemon.start()

    def _zebra_ready(self) -> bool:
        self._daemons[0].check_running()
        return all((self.config_dir / name).exists() for name in ("zebra.vty", "zserv.api"))

    def _vtysh_reaches_daemons(self) -> bool:
        for daemon in self._daemons:
            daemon.check_running()
        try:
            answer = self.vtysh("show daemons")
        except LabError:
            return False
        return {"zebra", "bgpd"} <= set(answer.split())
