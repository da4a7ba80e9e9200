"""Running lab commands and long-lived lab daemons, and stopping them for sure.

A daemon runs in the foreground as a direct child (every wrapper in its command line execs),
so the child's pid is the daemon's pid. Its pid file is a second record: on stop, a process
named there is killed too, but only while it is still inside the daemon's network namespace,
so a recycled pid of someone else's process is never touched.
"""

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import LabError

__all__ = ["Daemon", "is_running", "run"]

_STOP_TIMEOUT = 5.0


def run(argv: Sequence[str], *, timeout: float = 30.0) -> str:
    """Run a command to completion and return its stdout; raise LabError when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: no answer within {timeout:g}s") from exc
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {output}")
    return done.stdout


def is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (orphans wait for init to reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Daemon:
    """One long-running lab process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        namespace_path: Path,
        pid_file: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._argv = list(argv)
        self._namespace_path = namespace_path
        self._pid_file = pid_file
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon (once)."""
        if self._process is not None:
            raise LabError(f"{self.name} was already started")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_running(self) -> None:
        """Raise LabError with the end of the daemon's log if it has exited."""
        if self._process is None:
            raise LabError(f"{self.name} was never started")
        code = self._process.poll()
        if code is not None:
            raise LabError(f"{self.name} exited with {code}; log ends with:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the daemon's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the daemon: SIGTERM (so it can say goodbye to its peers), then SIGKILL."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(_STOP_TIMEOUT)
        self._kill_pid_file_process()

    def _kill_pid_file_process(self) -> None:
        if self._pid_file is None:
            return
        try:
            pid = int(self._pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        if _in_namespace(pid, self._namespace_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _in_namespace(pid: int, namespace_path: Path) -> bool:
    try:
        process_namespace = os.stat(f"/proc/{pid}/ns/net")
        namespace = os.stat(namespace_path)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return (process_namespace.st_dev, process_namespace.st_ino) == (
        namespace.st_dev,
        namespace.st_ino,
    )
