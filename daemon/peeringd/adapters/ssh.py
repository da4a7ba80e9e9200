"""One device CLI over SSH with netmiko: the session, its host key check, and its errors.

The base of every device driver. It keeps one session across passes and
reopens it when it drops or after any error (a session in an unknown mode is
not worth saving), reads secrets from the files the state file names, checks
host keys against knownHostsFile, never accepting a new one, and turns
netmiko's and paramiko's exceptions into ``peeringd.errors`` here and nowhere
else. netmiko logs in; lines and replies then go through ``terminal``, which
writes many lines at once and tells their replies apart. Each reply is checked
for the device's error lines before it is used.

A configuration session sends its lines in batches: the lines that stay in one
mode (neighbours, max-paths) go out together; a line that enters or leaves a
mode (``router bgp``, ``exit``, ``address-family``) goes alone, and only once it
was accepted does anything after it follow, so no line ever runs in a mode it
was not meant for. A line rejected inside a batch is named with the device's
answer; the lines after it in the same batch were already sent, and the changes
they complete are reported as applied. The session then ends without the
verification, and the next pass re-reads what is there and plans what remains.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import paramiko
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException, ReadTimeout

from peeringd.adapters import terminal, zebos
from peeringd.core import desired
from peeringd.core.plan import Change
from peeringd.errors import (
    CommandRejected,
    DeviceAuthenticationFailed,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyMismatch,
    OutputNotUnderstood,
    UnreadableReply,
    VerificationFailed,
)

__all__ = ["PROMPT", "CliSession"]

# Any ZebOS-family prompt: `ns#`, `router(config)#`, `router(config-router)#`.
PROMPT = r"[\w.-]+(?:\([\w-]+\))?#"

_KEY_MISMATCH = re.compile(r"got '([A-Za-z0-9+/=]+)', expected '([A-Za-z0-9+/=]+)'")
# How long the running config that proved a configuration session stands for a fresh read:
# the pass's verification follows at once; a later pass reads the device again.
_FRESH_SECONDS = 5.0
# Configuration lines that enter or leave a mode: each is sent on its own (see above).
_MODE_LINE = re.compile(r"(?:router |exit|end$|address-family|configure )")


class CliSession:
    """An SSH session to one ZebOS-family device's CLI, reopened on demand."""

    device_type = ""  # netmiko's driver
    save_command = ""
    dialect = zebos.NETSCALER
    error_prefixes: tuple[str, ...] = ("%",)
    # The AS of the running `router bgp`, as last read: rendering needs it.
    _router_as: int | None = None
    # This process changed the running config and no save has succeeded since.
    _save_pending = False
    # The fingerprint of the running config as last read.
    _last_running: int | None = None
    # The running config read to prove the last configuration session, and when.
    _verified: tuple[zebos.RunningConfig, float] | None = None
    # The running config as last parsed, by the digest of its text: a pass that reads the same
    # text again (every pass that changes nothing) does not parse thousands of lines again,
    # CPU that all ADCs' threads would otherwise queue for under the one interpreter lock.
    _parsed: tuple[bytes, zebos.RunningConfig] | None = None

    def __init__(self, adc: desired.ADC, *, timeout: float = 30.0) -> None:
        self._start(adc.name, adc.ssh, timeout)

    @classmethod
    def login(cls, name: str, ssh: desired.SSH, *, timeout: float = 30.0) -> Self:
        """A session to a device no state file describes yet (``peeringd import`` reads it)."""
        session = cls.__new__(cls)
        session._start(name, ssh, timeout)
        return session

    def _start(self, name: str, ssh: desired.SSH, timeout: float) -> None:
        self.name = name
        self._ssh = ssh
        self._timeout = timeout
        self._connection: Any = None
        self._line = ""  # the line in flight, named by errors
        # The fingerprint of the running config whose comparison with the startup config is
        # known, and the answer: the startup config is read again only when the running one
        # changed. A fingerprint, not the startup config: a daemon would keep a second copy of
        # thousands of neighbours between passes for it.
        self._startup_known: tuple[int, bool] | None = None

    @property
    def address(self) -> str:
        return f"{self._ssh.username}@{self._ssh.host}:{self._ssh.port}"

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._startup_known = self._verified = None  # a new session may meet a rebooted device
        if connection is not None:
            with contextlib.suppress(Exception):  # the session is being thrown away either way
                connection.disconnect()

    def _session(self) -> Any:
        if self._connection is not None and self._connection.is_alive():
            return self._connection
        self.close()
        self._connection = ConnectHandler(**self._connect_parameters())
        self._opened(self._connection)
        return self._connection

    def _opened(self, connection: Any) -> None:
        """What a driver checks once per session, right after the login."""

    def _connect_parameters(self) -> dict[str, Any]:
        ssh = self._ssh
        password = self._secret(ssh.password_file) if ssh.password_file else None
        known_hosts = self._known_hosts()
        if not known_hosts.is_file():
            raise HostKeyMismatch(self.name, f"known_hosts file {known_hosts} does not exist")
        return {
            "device_type": self.device_type,
            "host": ssh.host,
            "port": ssh.port,
            "username": ssh.username,
            "password": password,
            "use_keys": ssh.key_file is not None,
            "key_file": str(ssh.key_file) if ssh.key_file else None,
            "passphrase": password if ssh.key_file else None,
            "allow_agent": False,
            "ssh_strict": True,
            "system_host_keys": False,
            "alt_host_keys": True,
            "alt_key_file": str(known_hosts),
            "conn_timeout": 10,
            "auth_timeout": 15,
            "banner_timeout": 15,
            "read_timeout_override": self._timeout,
        }

    def _known_hosts(self) -> Path:
        """knownHostsFile, else ~/.ssh/known_hosts; looked for only when the file names none."""
        if self._ssh.known_hosts_file is not None:
            return self._ssh.known_hosts_file
        try:
            return Path.home() / ".ssh" / "known_hosts"
        except RuntimeError:
            raise HostKeyMismatch(
                self.name,
                "no knownHostsFile is set and there is no home directory to find "
                "~/.ssh/known_hosts in: set ssh.knownHostsFile",
            ) from None

    def _secret(self, path: Path) -> str:
        """The secret in ``path`` without its trailing newline; errors name the file, never the secret."""
        try:
            return path.read_text().rstrip("\n")
        except OSError as error:
            raise DeviceError(self.name, f"cannot read {path}: {error.strerror}") from None

    def _send(self, connection: Any, command: str, prompt: str) -> str:
        """``command``'s reply, once the prompt (a regex) that ends it arrived; raises
        CommandRejected when a reply line starts with one of ``error_prefixes``."""
        (reply,) = self._exchange(connection, (command,), prompt)
        if rejected := self._rejection(reply):
            raise CommandRejected(self.name, command, rejected)
        return reply

    def _exchange(self, connection: Any, lines: tuple[str, ...], prompt: str) -> list[str]:
        # Errors name the line in flight, with any password in it redacted.
        self._line = zebos.redacted(lines[0])
        try:
            return terminal.exchange(connection, lines, prompt, self._timeout)
        except (terminal.NoReply, terminal.ChannelClosed) as error:
            self._line = zebos.redacted(error.line)
            raise

    def _rejection(self, reply: str) -> str:
        """The device's error lines in ``reply``, joined; empty when it accepted the line."""
        if not any(prefix in reply for prefix in self.error_prefixes):
            return ""  # one scan of a long reply (a running config) instead of one a line
        return " ".join(
            line.strip() for line in reply.splitlines() if line.strip().startswith(self.error_prefixes)
        )

    def _render(self, changes: tuple[Change, ...]) -> tuple[zebos.Step, ...]:
        """The lines for ``changes``; every token is checked before anything is sent."""
        try:
            return zebos.render(changes, self.dialect, self._router_as)
        except zebos.RenderError as error:
            raise DeviceError(self.name, f"nothing sent: {error}") from None

    def _configure(
        self, connection: Any, steps: tuple[zebos.Step, ...], changes: tuple[Change, ...]
    ) -> Iterator[Change]:
        """One configuration session: the steps' lines in batches, each step's change yielded
        once all its lines were accepted; then the running config must show every change.

        A rejected line raises CommandRejected naming it, after the changes that its batch
        did complete were yielded; no batch after it is sent.
        """
        self._save_pending = True
        self._send(connection, "configure terminal", PROMPT)
        lines = [(line.strip(), step) for step in steps for line in step.lines]
        unanswered = {id(step): len(step.lines) for step in steps}
        failed: set[int] = set()
        rejected: list[tuple[str, str]] = []
        waiting = list(steps)  # steps not yet yielded or given up, in order
        for batch in _batches(lines):
            replies = self._exchange(connection, tuple(line for line, _ in batch), PROMPT)
            for (line, step), reply in zip(batch, replies, strict=True):
                unanswered[id(step)] -= 1
                if text := self._rejection(reply):
                    rejected.append((zebos.redacted(line), zebos.redacted(text)))
                    failed.add(id(step))
            while waiting and unanswered[id(waiting[0])] == 0:
                step = waiting.pop(0)
                if step.change is not None and id(step) not in failed:
                    yield step.change
            if rejected:
                line, text = rejected[0]
                more = f" ({len(rejected) - 1} later lines of its batch were rejected too)"
                raise CommandRejected(self.name, line, text + (more if len(rejected) > 1 else ""))
        self._send(connection, "end", PROMPT)
        running = self._running_config(connection)
        if unmet := zebos.unmet(changes, running):
            raise VerificationFailed(f"{self.name}: the running config does not show {len(unmet)} changes")
        self._verified = (running, time.monotonic())

    def _current_config(self, connection: Any) -> zebos.RunningConfig:
        """The running config: read now, or the one that proved a configuration session a
        moment ago (the pass's own verification then reads it once, not twice)."""
        verified, self._verified = self._verified, None
        if verified is not None and time.monotonic() - verified[1] < _FRESH_SECONDS:
            return verified[0]
        return self._running_config(connection)

    def _running_config(self, connection: Any) -> zebos.RunningConfig:
        text = self._send(connection, "show running-config", PROMPT)
        digest = hashlib.sha256(text.encode()).digest()
        if self._parsed is not None and self._parsed[0] == digest:
            running = self._parsed[1]
        else:
            running = zebos.parse_running_config(text)
            self._parsed = (digest, running)
        self._router_as = running.router_as
        self._last_running = running.fingerprint
        return running

    def save(self) -> None:
        """Persist the running configuration; until it succeeds the device reports itself unsaved,
        so the next pass saves again even when it has nothing else to change."""
        with self._errors(self.save_command):
            self._save_pending = True
            self._persist(self._session())
            self._saved(self._last_running)

    def _persist(self, connection: Any) -> None:
        self._send(connection, self.save_command, PROMPT)

    def _unsaved(self, connection: Any, running: zebos.RunningConfig) -> bool:
        """Whether a reboot would bring back another BGP configuration than ``running``: a save
        this process failed to make, or a startup config whose ``router bgp`` differs.

        The startup config is read only when the running config is not the one last compared
        (or saved): it changes only with the running one, or with a reboot, which ends the
        session. A startup config without ``router bgp`` tells nothing (FRR 8.4 prints an
        empty one when vtysh does not find the file; a device may refuse the command): the
        failed saves this process saw are then all that is known.
        """
        if self._save_pending:
            return True
        fingerprint = running.fingerprint
        if self._startup_known is not None and self._startup_known[0] == fingerprint:
            return self._startup_known[1]
        try:
            startup = zebos.parse_startup_config(self._send(connection, "show startup-config", PROMPT))
            unsaved = startup.router_as is not None and startup != running
        except CommandRejected:
            unsaved = False
        self._startup_known = (fingerprint, unsaved)
        return unsaved

    def _saved(self, running: int | None) -> None:
        """A save succeeded: the startup config is now the running one last read (``running``
        is its fingerprint)."""
        self._save_pending = False
        self._startup_known = None if running is None else (running, False)

    @contextlib.contextmanager
    def _errors(self, first_line: str) -> Iterator[None]:
        """netmiko's, paramiko's and the parsers' exceptions as peeringd's; any error ends the session."""
        self._line = first_line
        try:
            yield
        except (DeviceError, VerificationFailed):
            self.close()
            raise
        except OutputNotUnderstood as error:
            self.close()
            raise UnreadableReply(self.name, f"cannot read its reply to {error}") from None
        except NetmikoAuthenticationException:
            self.close()
            raise DeviceAuthenticationFailed(self.name, f"{self.address} refused the credentials") from None
        except NetmikoTimeoutException as error:
            self.close()
            raise self._connect_error(str(error)) from None
        except (ReadTimeout, terminal.NoReply):
            alive = self._connection is not None and self._connection.is_alive()
            self.close()
            if alive:
                raise DeviceTimeout(
                    self.name, f"no answer to {self._line!r} within {self._timeout:g}s"
                ) from None
            raise DeviceUnreachable(
                self.name, f"the connection dropped while sending {self._line!r}"
            ) from None
        except terminal.ChannelClosed:
            self.close()
            raise DeviceUnreachable(
                self.name, f"the connection dropped while sending {self._line!r}"
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as error:
            self.close()
            raise DeviceUnreachable(
                self.name, f"the connection failed while sending {self._line!r}: {error}"
            ) from None
        except ValueError as error:
            self.close()
            raise DeviceError(self.name, f"unexpected answer to {self._line!r}: {error}") from None

    def _connect_error(self, message: str) -> DeviceError:
        where = f"{self._ssh.host}:{self._ssh.port}"
        known_hosts = self._known_hosts()
        if match := _KEY_MISMATCH.search(message):
            return HostKeyMismatch(
                self.name,
                f"{where} offered host key {_fingerprint(match[1])}, but {known_hosts} expects "
                f"{_fingerprint(match[2])}: not connecting (is it the device?)",
            )
        if "not found in known_hosts" in message:
            return HostKeyMismatch(
                self.name,
                f"{where} offered host key {_offered_fingerprint(self._ssh.host, self._ssh.port)}, "
                f"which is not in {known_hosts}: check it on the device, then add it",
            )
        if "TCP connection to device failed" in message or "DNS failure" in message:
            return DeviceUnreachable(self.name, f"cannot connect to {where}")
        return DeviceTimeout(self.name, f"connecting to {where} timed out")


def _batches(lines: list[tuple[str, zebos.Step]]) -> Iterator[list[tuple[str, zebos.Step]]]:
    """The lines in sending order: a line that enters or leaves a mode alone, the lines
    between such lines together."""
    batch: list[tuple[str, zebos.Step]] = []
    for entry in lines:
        if _MODE_LINE.match(entry[0]):
            if batch:
                yield batch
            yield [entry]
            batch = []
        else:
            batch.append(entry)
    if batch:
        yield batch


def _fingerprint(key_base64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _offered_fingerprint(host: str, port: int) -> str:
    """The fingerprint of the key the server offers, read with a bare handshake (no login)."""
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=10)
                return str(transport.get_remote_server_key().fingerprint)
            finally:
                transport.close()
    except (OSError, paramiko.SSHException):
        return "(unknown: the handshake failed)"
