"""The shipped unit under a real systemd: Debian 12 booted by systemd-nspawn, systemd 252 as PID 1.

peeringd is installed by running README's "Run under systemd" shell blocks, word for word, in
a copy of this working tree inside the container: a minimal Debian without libnss-systemd, so
the service's dynamic user has no passwd entry. The container shares the host's network
namespace: the daemon reaches the lab's API server and NetScaler simulator on the host's
127.0.0.1, and the test reads the unit's /healthz there. The tests run in file order against
one booted service, the way an operator would meet it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.bgplab.poll import until
from tests.boot import rootfs
from tests.boot.nspawn import Container, Run
from tests.boot.systems import NODES, Systems, copy_working_tree, pip_settings, systems
from tests.shipped import CREDENTIALS, UNIT, exec_start, metrics_port, seconds, unit_values
from tests.support import REPO

SERVICE = UNIT.stem
CLONE = "/root/peeringd"  # where the operator cloned the repository, inside the container
STATE_FILE = "/etc/peeringd/peering.yaml"
PORT = metrics_port(exec_start())
WATCHDOG = seconds(unit_values("WatchdogSec")[0])
# The unit's metrics port is fixed: one booted unit per machine at a time, whichever worktree.
_LOCKS = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
_PORT_LOCK = _LOCKS / "peeringd-boot-unit.lock"
# The first test also pays for debootstrap (cold cache) and the install.
pytestmark = pytest.mark.timeout(1800)


def readme_shell_blocks(section: str = "## Run under systemd") -> list[str]:
    """The ```sh blocks of README's ``section``, in order."""
    text = (REPO / "README.md").read_text()
    body = text[text.index(section) + len(section) :]
    body = body[: body.index("\n## ")] if "\n## " in body else body
    return re.findall(r"^```sh\n(.*?)^```$", body, re.MULTILINE | re.DOTALL)


@dataclass
class Deployment:
    """The booted container with peeringd enabled in it, and what the daemon talks to."""

    container: Container
    systems: Systems
    enabled: Run

    def show(self) -> dict[str, str]:
        """`systemctl show` of the unit's state, as name -> value."""
        shown = self.container.check(
            "systemctl",
            "show",
            SERVICE,
            "--property=ActiveState,SubState,Result,NRestarts,MainPID,StatusText,ExecMainStatus,"
            "ActiveEnterTimestampMonotonic,WatchdogTimestampMonotonic",
        )
        return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The daemon's log events called ``name``, from the journal, each with journald's
        CLOCK_MONOTONIC time in seconds (the host's clock too) as ``monotonic``."""
        journal = self.container.check("journalctl", f"--unit={SERVICE}", "--output=json", "--no-pager")
        found = []
        for line in journal.stdout.splitlines():
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, str) and message.startswith("{"):
                event = json.loads(message)
                if event.get("event") == name:
                    found.append({**event, "monotonic": int(entry["__MONOTONIC_TIMESTAMP"]) / 1e6})
        return found

    def journal(self) -> str:
        """The end of the unit's journal, for a failure's message."""
        shown = self.container.run("journalctl", f"--unit={SERVICE}", "--output=cat", "--no-pager")
        return shown.stdout[-4000:]

    def write_state(self, text: str) -> None:
        """Replace the state file as an editor does: a new file renamed over the old one."""
        script = f"cat > {STATE_FILE}.new && mv {STATE_FILE}.new {STATE_FILE}"
        self.container.check("sh", "-c", script, stdin=text)


def healthz() -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def metrics_port_to_ourselves() -> Iterator[None]:
    """Hold the machine-wide lock of the unit's metrics port, and check nothing else holds it."""
    with _PORT_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with socket.socket() as probe:
            # As the daemon binds: connections of an earlier run in TIME_WAIT are no listener.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", PORT))
            except OSError as error:
                pytest.fail(f"127.0.0.1:{PORT}, the unit's metrics address, is in use: {error}")
        yield


@pytest.fixture(scope="module")
def deployment(
    debian_root: rootfs.RootTarball, costs: dict[str, float], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Boot, install as README says, `systemctl enable --now`; power off and remove afterwards."""
    workdir = tmp_path_factory.mktemp("boot-unit")
    root = workdir / "root"
    pip_cache = rootfs.cache_dir() / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(metrics_port_to_ourselves())
        cleanup.callback(rootfs.remove_tree, root)
        costs["unpack"] = debian_root.unpack(root)
        running = cleanup.enter_context(systems(workdir))
        clone = root / CLONE.lstrip("/")
        copy_working_tree(clone)
        # The operator's state file and secrets, where README's commands take them from.
        (clone / "state" / "peering.yaml").write_text(running.state_text(CREDENTIALS, interval="60s"))
        running.write_secrets(clone)
        shell = {"HOME": "/root", **pip_settings(root)}  # an operator's root shell

        booting = time.monotonic()
        container = Container(
            root,
            f"peeringd-unit-{os.getpid()}",
            workdir / "nspawn.log",
            options=[f"--bind={pip_cache}:/root/.cache/pip"],
        ).start()
        cleanup.callback(container.stop)
        container.wait_until_booted(timeout=120)
        costs["boot"] = time.monotonic() - booting

        *install, enable = readme_shell_blocks()
        installing = time.monotonic()
        for block in install:
            container.check("sh", "-e", "-x", "-c", block, cwd=CLONE, environment=shell, timeout=600)
        costs["install (README)"] = time.monotonic() - installing
        enabled = container.run("sh", "-e", "-x", "-c", enable, cwd=CLONE, environment=shell, timeout=300)
        costs["enable --now"] = enabled.seconds
        checking = time.monotonic()
        yield Deployment(container, running, enabled)
        costs["checks"] = time.monotonic() - checking
        tearing_down = time.monotonic()
    # Powering off, stopping the systems, removing the root.
    costs["teardown"] = time.monotonic() - tearing_down


def test_the_host_is_minimal_debian_12_with_systemd_252(deployment: Deployment) -> None:
    """The container is what the issue was found on: systemd 252 as PID 1, no libnss-systemd."""
    version = deployment.container.check("systemctl", "--version").stdout.split()[1]
    comm = deployment.container.check("cat", "/proc/1/comm").stdout.strip()
    nss = deployment.container.run("dpkg-query", "--show", "--showformat=${Status}", "libnss-systemd")

    assert (comm, version) == ("systemd", "252")
    assert "install ok installed" not in nss.stdout


def test_enable_now_succeeds(deployment: Deployment) -> None:
    """`systemctl enable --now` returns 0 once READY=1 came, after the first pass."""
    shown = deployment.show()

    assert deployment.enabled.returncode == 0, deployment.enabled.explain() + deployment.journal()
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), deployment.journal()
    assert shown["StatusText"].startswith("converged: 1 ADCs"), shown


def test_the_service_outlives_a_watchdog_period_without_a_restart(deployment: Deployment) -> None:
    """Active for longer than WatchdogSec with the same main process: the pings arrive."""
    first = deployment.show()
    since = int(first["ActiveEnterTimestampMonotonic"]) / 1e6
    until(
        time.monotonic,
        lambda now: now - since > WATCHDOG + 5,
        timeout=WATCHDOG + 60,
        what=f"{WATCHDOG + 5:g}s of activity",
        interval=1,
    )
    later = deployment.show()
    last_ping = int(later["WatchdogTimestampMonotonic"]) / 1e6

    assert (later["ActiveState"], later["NRestarts"], later["MainPID"]) == ("active", "0", first["MainPID"])
    assert time.monotonic() - last_ping < WATCHDOG, later


def test_healthz_answers_200(deployment: Deployment) -> None:
    """/healthz on the unit's loopback metrics address, from the host (one network namespace)."""
    assert healthz() == (200, "ok\n")


def test_the_simulator_received_every_neighbour(deployment: Deployment) -> None:
    """The daemon in the container configured the ADC on the host: one neighbour per node."""
    assert deployment.systems.neighbours() == sorted(NODES.values())
    assert deployment.systems.api.get("bgppeers.crd.projectcalico.org", "adc-1") is not None


def test_reload_exits_0_and_the_daemon_rereads_at_once(
    deployment: Deployment, figures: dict[str, float]
) -> None:
    """On systemd 252 `reload` returns once SIGHUP is sent; the re-read and its pass follow."""
    before = len(deployment.events("pass requested"))
    reload = deployment.container.run("systemctl", "reload", SERVICE)
    returned = time.monotonic()
    (requested, *_) = until(
        lambda: [e for e in deployment.events("pass requested")[before:] if e["reason"] == "SIGHUP"],
        bool,
        timeout=30,
        what="the SIGHUP's pass request",
    )
    (done, *_) = until(
        lambda: [e for e in deployment.events("pass done") if e["monotonic"] > requested["monotonic"]],
        bool,
        timeout=60,
        what="the pass after the reload",
    )
    figures["reload: re-read after systemctl returned"] = requested["monotonic"] - returned
    figures["reload: pass done after systemctl returned"] = done["monotonic"] - returned

    assert reload.returncode == 0, reload.explain()
    assert deployment.show()["ActiveState"] == "active"


def test_an_edit_in_a_git_checkout_is_applied_with_its_revision(deployment: Deployment) -> None:
    """/etc/peeringd as a git checkout: the sandboxed user reads its revision (safe.directory)."""
    git = ["git", "-C", "/etc/peeringd", "-c", "user.name=ops", "-c", "user.email=ops@example.invalid"]
    deployment.container.check(*git, "init", "--quiet")
    deployment.container.check(*git, "add", "peering.yaml")
    deployment.container.check(*git, "commit", "--quiet", "--message=peering as deployed")
    head = deployment.container.check(*git, "rev-parse", "--short=12", "HEAD").stdout.strip()
    before = len(deployment.events("state file changed"))
    deployment.write_state(deployment.systems.state_text(CREDENTIALS, interval="60s", ebgp=4))

    changed = until(
        lambda: deployment.events("state file changed")[before:], bool, timeout=30, what="the edit's event"
    )
    until(deployment.systems.max_paths_ebgp, lambda paths: paths == 4, timeout=60, what="max-paths ebgp 4")
    assert changed[0]["git_revision"] == f"{head}-dirty", deployment.journal()


def test_a_broken_state_file_keeps_the_service_active_and_says_stale(deployment: Deployment) -> None:
    """The last good state stays in use; `systemctl show -p StatusText` says the file is stale."""
    deployment.write_state("apiVersion: peeringd/v1\nkind: PeeringState\nadcs: [\n")

    shown = until(
        deployment.show,
        lambda shown: shown["StatusText"].startswith("state file stale"),
        timeout=30,
        what="the stale status",
    )
    assert (shown["ActiveState"], shown["NRestarts"]) == ("active", "0")
    assert STATE_FILE in shown["StatusText"]
    assert healthz()[0] == 200


def test_stop_exits_0_and_the_daemon_ends_cleanly(deployment: Deployment, figures: dict[str, float]) -> None:
    """`systemctl stop` returns 0 and the daemon exits 0 on SIGTERM, well before the timeout."""
    stop = deployment.container.run("systemctl", "stop", SERVICE, timeout=180)
    figures["systemctl stop"] = stop.seconds
    shown = deployment.show()

    assert stop.returncode == 0, stop.explain()
    assert (shown["ActiveState"], shown["Result"], shown["ExecMainStatus"]) == ("inactive", "success", "0")
