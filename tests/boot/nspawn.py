"""systemd-nspawn containers for the boot tests, without a service manager on the host.

This host's PID 1 is not systemd, so there is no machined to register with and no D-Bus to ask
for a scope: containers run with --register=no --keep-unit, and commands enter them with
nsenter(1) (what `machinectl shell` would do). A container that booted shares the host's
network namespace unless told otherwise, so 127.0.0.1 inside is the host's loopback.

Stopping is what `machinectl poweroff` and `docker stop` do: SIGTERM to systemd-nspawn, which
passes the container's --kill-signal to its PID 1. Whatever is left after the deadline is
killed with its PID namespace (SIGKILL to the container's PID 1 ends every process in it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BASE_ENVIRONMENT", "Container", "Run", "run_once"]

# What a command started by `machinectl shell` or `docker exec` finds: nothing of this host's.
BASE_ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
_LEADER_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Run:
    """A finished command: its argv, exit code, output and wall time."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def explain(self) -> str:
        return f"{' '.join(self.argv)} exited {self.returncode}\n{self.stdout}\n{self.stderr}"


@dataclass
class Container:
    """A root directory run by systemd-nspawn: booted (systemd as PID 1) or one command as PID 1.

    ``options`` are further systemd-nspawn options (binds, --read-only, --user=, ...).
    """

    root: Path
    name: str
    log: Path
    command: Sequence[str] = ()
    options: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None
    leader: int | None = None
    _output: int | None = field(default=None, repr=False)

    @property
    def booted(self) -> bool:
        return not self.command

    def start(self) -> Container:
        argv = [
            "systemd-nspawn",
            f"--directory={self.root}",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
            "--quiet",
            *self.options,
        ]
        argv += ["--boot"] if self.booted else ["--", *self.command]
        self._output = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=self._output,
            start_new_session=True,
            preexec_fn=_stop_with_parent,  # noqa: PLW1509 - only prctl(2), no locks taken
        )
        self.leader = self._wait_for_leader()
        return self

    def _wait_for_leader(self) -> int:
        """The container's PID 1 as this host sees it: nspawn's child in another PID namespace."""
        assert self.process is not None
        own = os.readlink("/proc/self/ns/pid")
        deadline = time.monotonic() + _LEADER_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.process.returncode}:\n{self.output()}")
            for child in _children(self.process.pid):
                try:
                    if os.readlink(f"/proc/{child}/ns/pid") != own:
                        return child
                except OSError:
                    continue
            time.sleep(0.05)
        raise RuntimeError(f"no container process within {_LEADER_TIMEOUT:g}s:\n{self.output()}")

    def wait_until_booted(self, timeout: float) -> str:
        """Poll `systemctl is-system-running` until boot is over: "running", or "degraded" when
        a unit failed (which the caller may accept or not); that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run("systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return state
            if time.monotonic() >= deadline:
                raise RuntimeError(f"still {state!r} after {timeout:g}s:\n{self.output()}")
            time.sleep(0.2)

    def running(self) -> bool:
        """True while systemd-nspawn runs; else an AssertionError with what it printed (so that
        a poll fails at once rather than at its deadline)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the container exited {self.process.returncode}:\n{self.output()}")
        return True

    def output(self) -> str:
        """What systemd-nspawn and the container's console printed."""
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def run(
        self,
        *argv: str,
        environment: Mapping[str, str] | None = None,
        user: tuple[int, int] | None = None,
        cwd: str = "/",
        stdin: str | None = None,
        timeout: float = 120,
    ) -> Run:
        """Run ``argv`` inside the container (as root, or as ``user``: uid and gid), with
        BASE_ENVIRONMENT plus ``environment`` and nothing of this process's."""
        assert self.leader is not None, "the container is not running"
        # --root: the container's root directory; --wdns: the working directory inside it.
        enter = ["nsenter", f"--target={self.leader}", "--all", "--root", f"--wdns={cwd}"]
        if user is not None:
            enter += [f"--setuid={user[0]}", f"--setgid={user[1]}"]
        variables = {**BASE_ENVIRONMENT, **(environment or {})}
        command = [*enter, "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items()), *argv]
        started = time.monotonic()
        result = subprocess.run(
            command,
            input=(stdin or "").encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return Run(
            tuple(argv),
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
            time.monotonic() - started,
        )

    def check(
        self,
        *argv: str,
        environment: Mapping[str, str] | None = None,
        user: tuple[int, int] | None = None,
        cwd: str = "/",
        stdin: str | None = None,
        timeout: float = 120,
    ) -> Run:
        """``run``, failing with the command's output unless it exits 0."""
        result = self.run(*argv, environment=environment, user=user, cwd=cwd, stdin=stdin, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(result.explain())
        return result

    def stop(self, timeout: float = 120) -> int | None:
        """SIGTERM to systemd-nspawn and its exit code; past ``timeout``, SIGKILL to everything
        the container holds (and None)."""
        if self.process is None:
            return None
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            if self._output is not None:
                os.close(self._output)
                self._output = None

    def kill(self) -> None:
        """End the container now: its PID 1 (and with it its PID namespace), then nspawn."""
        assert self.process is not None
        if self.leader is not None:
            _signal(self.leader, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


def run_once(
    root: Path, name: str, command: Sequence[str], options: Sequence[str] = (), timeout: float = 900
) -> Run:
    """``command`` as PID 1 of a container of ``root``, to its end (what `docker build` does
    with a RUN line). ``name``: the machine's, unique on this host (nspawn keeps state by it)."""
    argv = [
        "systemd-nspawn",
        f"--directory={root}",
        f"--machine={name}",
        "--register=no",
        "--keep-unit",
        "--console=pipe",
        "--quiet",
        *options,
        "--",
        *command,
    ]
    started = time.monotonic()
    result = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        preexec_fn=_stop_with_parent,
    )
    return Run(
        tuple(command),
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
        time.monotonic() - started,
    )


def _stop_with_parent() -> None:
    """In systemd-nspawn before exec: SIGTERM when the test process dies, however it dies, so
    that a killed test run still powers its container off."""
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
