"""The container image as the Dockerfile makes and runs it, without a registry or a Docker engine.

The Dockerfile's instructions are carried out on the same minimal Debian 12 root as the unit's
test, standing in for python:3.11-slim (Debian 12, Python 3.11): RUN lines run in a
systemd-nspawn container as `docker build` runs them, COPY copies from this working tree, ENV
is kept. Then the image runs as `docker run --read-only --tmpfs /tmp` would: the ENTRYPOINT
(tini as PID 1) as USER 10001 with the passwd entry's home (/nonexistent), a read-only root,
the state file and the secrets mounted read-only, in a network namespace of its own where the
lab's API server and NetScaler simulator listen on 127.0.0.1. A home the daemon needs, or a
write anywhere but /tmp, fails here rather than in production.

Not proven here: the python:3.11-slim image itself (its Python is built from source under
/usr/local), pulling it, and the Docker engine's own mounts (/etc/hosts, /etc/resolv.conf).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.bgplab.poll import until
from tests.boot import rootfs
from tests.boot.nspawn import BASE_ENVIRONMENT, Container, run_once
from tests.boot.systems import NODES, Systems, in_namespace, network_namespace, pip_settings, systems
from tests.shipped import healthcheck, stages
from tests.support import REPO

SECRETS = "/run/secrets"  # where README's `docker run` mounts them
# Kernel and device file systems that Docker mounts too, and that hold no files of the image's user.
_SPECIAL = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "devtmpfs"}
pytestmark = pytest.mark.timeout(1800)


@dataclass
class Image:
    """What `docker build` left: the root, the environment, the user and the entry point."""

    root: Path
    environment: dict[str, str] = field(default_factory=lambda: dict(BASE_ENVIRONMENT))
    user: str = "root"
    entrypoint: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def uid(self) -> int:
        return int(self.user.partition(":")[0])

    @property
    def gid(self) -> int:
        """USER's group, else the user's id (what the Dockerfile's useradd makes it)."""
        return int(self.user.partition(":")[2] or self.uid)

    @property
    def home(self) -> str:
        """The USER's home in the image's /etc/passwd, which Docker sets as HOME (else "/")."""
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[2] == str(self.uid):
                return fields[5]
        return "/"


def build(root: Path, name: str, pip: dict[str, str]) -> Image:
    """Carry out the Dockerfile's stages on ``root``, one root standing in for every stage."""
    image = Image(root)
    for stage in stages():
        for instruction, arguments in stage.instructions:
            if instruction == "RUN":
                options = [f"--setenv={k}={v}" for k, v in {**image.environment, **pip}.items()]
                ran = run_once(root, name, ["/bin/sh", "-c", arguments], options)
                assert ran.returncode == 0, ran.explain()
            elif instruction == "COPY":
                _copy(root, arguments.split())
            elif instruction == "ENV":
                for assignment in shlex.split(arguments):
                    variable, _, value = assignment.partition("=")
                    image.environment[variable] = _expand(value, image.environment)
            elif instruction == "USER":
                image.user = arguments
            elif instruction == "VOLUME":
                image.volumes += arguments.split()
            elif instruction == "ENTRYPOINT":
                image.entrypoint = json.loads(arguments)
    for volume in image.volumes:  # Docker makes a VOLUME's mount point in the image
        (root / volume.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return image


def _expand(value: str, environment: dict[str, str]) -> str:
    """$NAME and ${NAME} from the image's environment so far, as Docker expands ENV values."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: environment.get(m[1] or m[2], ""), value)


def _copy(root: Path, words: list[str]) -> None:
    """COPY from the build context (this working tree); --from=<stage> names a path that
    already is in the one root."""
    if words[0].startswith("--from="):
        (source, destination) = words[1:]
        assert source == destination, words
        assert (root / source.lstrip("/")).exists(), words
        return
    *sources, destination = words
    for source in sources:
        target = root / destination.lstrip("/")
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, target / Path(source).name)


@dataclass
class Running:
    """The image's container and what it talks to."""

    image: Image
    container: Container
    systems: Systems

    def daemon_pid(self) -> int:
        """The process tini started: the daemon, as this host numbers it."""
        assert self.container.leader is not None
        children = Path(f"/proc/{self.container.leader}/task/{self.container.leader}/children").read_text()
        (pid,) = children.split()
        return int(pid)


@pytest.fixture(scope="module")
def running(
    debian_root: rootfs.RootTarball, costs: dict[str, float], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Build, then run the ENTRYPOINT until its converged first pass; remove it all afterwards."""
    workdir = tmp_path_factory.mktemp("boot-image")
    root = workdir / "root"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(rootfs.remove_tree, root)
        costs["unpack"] = debian_root.unpack(root)
        building = time.monotonic()
        image = build(root, f"peeringd-build-{os.getpid()}", pip_settings(root))
        costs["docker build (emulated)"] = time.monotonic() - building

        namespace = cleanup.enter_context(network_namespace(f"peeringd-image-{os.getpid()}"))
        lab = in_namespace(namespace, lambda: cleanup.enter_context(systems(workdir)))
        state, secrets = workdir / "state", workdir / "secrets"
        state.mkdir()
        (state / "peering.yaml").write_text(lab.state_text(SECRETS, interval="60s"))
        lab.write_secrets(secrets)
        for secret in [secrets, *secrets.iterdir()]:  # what a Kubernetes Secret with fsGroup gives
            os.chown(secret, image.uid, image.gid)
            secret.chmod(0o500 if secret.is_dir() else 0o400)

        starting = time.monotonic()
        container = Container(
            root,
            f"peeringd-image-{os.getpid()}",
            workdir / "nspawn.log",
            # USER as Docker applies it: the ids, no other groups, HOME from the image's passwd
            # (nspawn's own --user would try to create that home). setpriv execs: tini is PID 1.
            command=[
                "setpriv",
                f"--reuid={image.uid}",
                f"--regid={image.gid}",
                "--clear-groups",
                "--",
                *image.entrypoint,
                "--kubeconfig",
                f"{SECRETS}/kubeconfig",
            ],
            options=[
                "--read-only",
                "--tmpfs=/tmp:mode=1777,nosuid,nodev,noexec",  # what `docker run --tmpfs /tmp` mounts
                "--chdir=/",
                f"--network-namespace-path={namespace}",
                "--kill-signal=SIGTERM",  # docker stop: SIGTERM to PID 1
                f"--bind-ro={state}:/etc/peeringd",
                f"--bind-ro={secrets}:{SECRETS}",
                f"--setenv=HOME={image.home}",
                "--setenv=NOTIFY_SOCKET=",  # nspawn's own, for its payload; Docker sets none
                *(f"--setenv={k}={v}" for k, v in image.environment.items()),
            ],
        ).start()
        cleanup.callback(container.stop)
        until(
            lambda: container.running() and lab.neighbours(),
            lambda found: found == sorted(NODES.values()),
            timeout=120,
            what="a converged pass",
        )
        costs["first pass"] = time.monotonic() - starting
        checking = time.monotonic()
        yield Running(image, container, lab)
        costs["checks"] = time.monotonic() - checking
        tearing_down = time.monotonic()
    costs["teardown"] = time.monotonic() - tearing_down


def test_tini_is_pid_1_and_the_daemon_runs_as_the_image_user(running: Running) -> None:
    """ENTRYPOINT and USER as set: tini as PID 1, peeringd as 10001:10001 with the passwd home."""
    assert running.container.leader is not None
    tini = Path(f"/proc/{running.container.leader}/comm").read_text().strip()
    daemon = running.daemon_pid()
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{daemon}/status").read_text().splitlines())
    environ = dict(
        entry.split("=", 1) for entry in Path(f"/proc/{daemon}/environ").read_text().split("\0") if entry
    )
    home_exists = running.container.run("test", "-e", environ.get("HOME", "/nonexistent"))

    assert (tini, running.image.user) == ("tini", "10001:10001")
    assert (status["Uid"].split(), status["Gid"].split()) == (["10001"] * 4, ["10001"] * 4)
    assert environ.get("HOME") == "/nonexistent"
    assert home_exists.returncode != 0


def test_the_healthcheck_passes_once_converged(running: Running) -> None:
    """The HEALTHCHECK command, run inside as the image's user, exits 0 after the first pass."""
    environment = {**running.image.environment, "HOME": running.image.home}  # as `docker exec` sets it
    check = running.container.run(
        *healthcheck(), user=(running.image.uid, running.image.gid), environment=environment
    )

    assert check.returncode == 0, check.explain()
    assert running.systems.neighbours() == sorted(NODES.values())


def test_nothing_is_written_outside_tmp(running: Running) -> None:
    """The root is read-only, and no writable mount but /tmp holds a file of the image's user."""
    assert running.container.leader is not None
    mounts = [
        line.split() for line in Path(f"/proc/{running.container.leader}/mountinfo").read_text().splitlines()
    ]
    # mountinfo: ... mount point (4), options (5), ..., "-", file system type, source, super options
    root_options = next(fields[5] for fields in mounts if fields[4] == "/")
    writable = [
        fields[4]
        for fields in mounts
        if "rw" in fields[5].split(",") and fields[fields.index("-") + 1] not in _SPECIAL
    ]
    points = {fields[4] for fields in mounts}  # a mount point is the mount's, not a write
    owned = {
        point: [
            found
            for found in running.container.check(
                "find", point, "-xdev", "-uid", str(running.image.uid)
            ).stdout.split()
            if found not in points
        ]
        for point in writable
    }

    in_tmp = owned.pop("/tmp")
    assert "ro" in root_options.split(",")
    assert {point: files for point, files in owned.items() if files} == {}
    assert "/tmp/peeringd.lock" in in_tmp  # the lock: the search finds what is there


def test_docker_stop_ends_it_with_0(running: Running, figures: dict[str, float]) -> None:
    """SIGTERM to PID 1 (tini), forwarded to the daemon, which finishes and exits 0."""
    started = time.monotonic()
    code = running.container.stop(timeout=90)
    figures["docker stop"] = time.monotonic() - started

    assert code == 0, running.container.output()
