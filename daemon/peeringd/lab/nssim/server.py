"""The SSH face of a simulated ADC: an asyncssh server on its own thread and event loop.

`NetScalerSimulator` serves one ADC's CLI (see `shell`) to real SSH clients such as
netmiko, so synchronous tests and the embedded lab can drive it. It also records every line
it receives, lets tests inspect and seed the device's state, and injects faults.
It may not listen anywhere its caller did not choose (default 127.0.0.1, ephemeral port).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hmac
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

import asyncssh

from peeringd.lab.nssim import faults, shell, vtysh, zebos
from peeringd.lab.nssim.device import BgpSession, Device, DeviceConfig
from peeringd.lab.nssim.profile import DeviceProfile, HaRole

__all__ = [
    "JournalEntry",
    "NetScalerSimulator",
    "known_hosts_entry",
    "write_known_hosts",
]

_START_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    """One line the simulator received.

    `mode` and `prompt` are the session's before the line ran; `ending` is how the line
    was finished (enter, interrupt for Ctrl-C, suspend for Ctrl-Z); `fault` names the
    injected fault that hit it (dropped, rejected, delayed) or is None.
    """

    session: int
    mode: shell.Mode
    prompt: str
    text: str
    ending: str = "enter"
    fault: str | None = None


def _load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The Ed25519 host key stored at `path`, created (mode 0600) on first use."""
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(key.export_private_key())
    return key


def known_hosts_entry(host: str, port: int, public_key: str) -> str:
    """An OpenSSH known_hosts line (`[127.0.0.1]:2222 ssh-ed25519 AAAA...`)."""
    where = host if port == 22 else f"[{host}]:{port}"
    return f"{where} {public_key}"


def write_known_hosts(path: Path, simulators: Iterable[NetScalerSimulator]) -> None:
    """Write a known_hosts file that trusts each running simulator's host key."""
    lines = [simulator.known_hosts_entry() for simulator in simulators]
    path.write_text("".join(f"{line}\n" for line in lines))


class _SshServer(asyncssh.SSHServer):
    """One client connection: authentication by the simulator's rules, and bookkeeping."""

    def __init__(
        self,
        simulator: NetScalerSimulator,
        connections: set[asyncssh.SSHServerConnection],
    ) -> None:
        self._simulator = simulator
        self._connections = connections
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._connections.discard(self._connection)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self._simulator.accepts_password(username, password)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._simulator.accepts_key(username, key)


class NetScalerSimulator:
    """A simulated NetScaler ADC reachable over SSH, one per ADC.

    Use as a context manager (`with NetScalerSimulator() as sim: sim.port`) or call
    `start()`/`stop()`. `host_key_path`: where the host key lives, created by the first
    simulator given that path and reused by every later one; None: a fresh key each time.
    `authorized_keys`: OpenSSH public key lines that may log in as `username` besides
    the password.

    Every method is thread-safe. State methods return copies; change state through them.
    """

    def __init__(
        self,
        profile: DeviceProfile | None = None,
        *,
        username: str = "nsroot",
        password: str = "nsroot",  # noqa: S107  # the ADC's factory default, for a local lab
        authorized_keys: Iterable[str] = (),
        host_key_path: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.profile = profile or DeviceProfile()
        self.username = username
        self.password = password
        self.host = host
        self._requested_port = port
        self._authorized_keys = {asyncssh.import_public_key(line).public_data for line in authorized_keys}
        self._host_key = (
            _load_or_create_host_key(Path(host_key_path))
            if host_key_path is not None
            else asyncssh.generate_private_key("ssh-ed25519")
        )
        self._lock = threading.Lock()
        self._device = Device(self.profile)
        self._faults = faults.FaultPlan()
        self._journal: list[JournalEntry] = []
        self._logins = 0
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    # Lifecycle

    def start(self) -> NetScalerSimulator:
        """Listen and serve on a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[asyncssh.SSHAcceptor] = concurrent.futures.Future()
        thread = threading.Thread(target=self._run, args=(loop, ready), name="nssim", daemon=True)
        thread.start()
        try:
            self._acceptor = ready.result(timeout=_START_TIMEOUT)
        except BaseException:
            thread.join(_START_TIMEOUT)
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close the listener and every client connection, then end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(_START_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_START_TIMEOUT)
        self._loop = self._thread = self._acceptor = None

    def __enter__(self) -> NetScalerSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the simulator listens on (only while started)."""
        if self._acceptor is None:
            raise RuntimeError("simulator not started")
        return self._acceptor.get_port()

    @property
    def host_public_key(self) -> str:
        """The host key in OpenSSH form: `ssh-ed25519 AAAA...` (no comment)."""
        algorithm, blob = self._host_key.export_public_key("openssh").decode().split()[:2]
        return f"{algorithm} {blob}"

    def known_hosts_entry(self) -> str:
        """The known_hosts line that trusts this simulator at its host and port."""
        return known_hosts_entry(self.host, self.port, self.host_public_key)

    # The device

    def running(self) -> DeviceConfig:
        """A copy of the running config (ns features and ZebOS)."""
        with self._lock:
            return self._device.running.copy()

    def neighbor_addresses(self) -> frozenset[str]:
        """The addresses of the running router's neighbours, without copying the whole config
        (a benchmark polls it while thousands of neighbours are configured)."""
        with self._lock:
            router = self._device.running.zebos.bgp
            return frozenset(router.neighbors) if router is not None else frozenset()

    def saved(self) -> DeviceConfig:
        """A copy of the saved config (what `save ns config` / `write` stored)."""
        with self._lock:
            return self._device.saved.copy()

    def set_feature(self, acronym: str, enabled: bool) -> None:
        """Switch an ns feature in the running config (as `enable ns feature` would)."""
        with self._lock:
            self._device.running.features[self._device.feature_acronym(acronym)] = enabled

    def load_zebos(self, text: str) -> None:
        """Replace the running ZebOS config with one parsed from `show running-config` text."""
        config = vtysh.parse_running_config(text, self.profile.max_paths_default)
        self.set_zebos(config)

    def set_zebos(self, config: zebos.ZebosConfig) -> None:
        """Replace the running ZebOS config with (a copy of) `config`."""
        with self._lock:
            self._device.running.zebos = config.copy()
            self._device.track_neighbors()

    def save(self) -> None:
        """Save the whole running config, as `save ns config` does."""
        with self._lock:
            self._device.save_all()

    def on_save(self, callback: Callable[[DeviceConfig], None] | None) -> None:
        """Call `callback` with a copy of what each save stores (None: stop). It runs on the
        server thread under the simulator's lock: it must not call the simulator."""
        with self._lock:
            self._device.on_save = callback

    def reboot(self) -> None:
        """Drop every connection and lose unsaved changes."""
        with self._lock:
            self._device.reboot()
        self.disconnect_all()

    def set_ha_role(self, role: HaRole) -> None:
        """Change this node's HA role, as a failover does, without ending any session."""
        with self._lock:
            self.profile = dataclasses.replace(self.profile, ha_role=role)
            self._device.profile = self.profile

    def set_bgp_session(self, address: str, state: str = "Established", prefixes: int = 0) -> None:
        """What `show ip bgp summary` reports for the neighbour at `address`."""
        session = BgpSession(state, prefixes)
        with self._lock:
            self._device.sessions[vtysh.normalize_address(address)] = session

    # Observation

    def journal(self) -> list[JournalEntry]:
        """Every line received since the last `clear_journal()`, oldest first."""
        with self._lock:
            return list(self._journal)

    def clear_journal(self) -> None:
        with self._lock:
            self._journal.clear()

    @property
    def logins(self) -> int:
        """How many shell sessions have started (successful logins)."""
        with self._lock:
            return self._logins

    # Faults

    def reject_line(self, pattern: str, text: str | None = None, times: int | None = None) -> None:
        """Answer lines fully matching the regex `pattern` with the device text `text`
        (`ERROR: ...` in nscli, `% ...` in vtysh; None: the mode's unknown-command text)
        instead of running them. `times` None: every time."""
        with self._lock:
            self._faults.reject(pattern, text, times)

    def drop_on(self, pattern: str, how: faults.DropHow = "channel", times: int | None = 1) -> None:
        """Drop the connection when a line fully matching `pattern` arrives (after its
        echo, before it runs). how="channel" closes the SSH channel, "transport" aborts TCP."""
        with self._lock:
            self._faults.drop_on(pattern, how, times)

    def drop_after(self, lines: int, how: faults.DropHow = "channel") -> None:
        """Run the next `lines` non-blank lines, then drop the connection sending another."""
        with self._lock:
            self._faults.drop_after(lines, how)

    def delay_replies(self, seconds: float, pattern: str | None = None, times: int | None = None) -> None:
        """Answer lines matching `pattern` (None: all) `seconds` late; the echo is not late."""
        with self._lock:
            self._faults.delay(seconds, pattern, times)

    def refuse_logins(self, refuse: bool = True) -> None:
        """Fail every authentication attempt, as if the credentials were wrong."""
        with self._lock:
            self._faults.refuse_auth = refuse

    def clear_faults(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def disconnect_all(self) -> None:
        """Abort every client connection (the listener stays up)."""
        loop = self._loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._abort_connections(), loop).result(_START_TIMEOUT)

    # Authentication (called by the server thread)

    def accepts_password(self, username: str, password: str) -> bool:
        """Whether `username`/`password` may log in now."""
        with self._lock:
            refused = self._faults.refuse_auth
        return (
            not refused
            and hmac.compare_digest(username, self.username)
            and hmac.compare_digest(password, self.password)
        )

    def accepts_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Whether `username` may log in now with the public key `key`."""
        with self._lock:
            refused = self._faults.refuse_auth
        return not refused and username == self.username and key.public_data in self._authorized_keys

    # The server thread

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: concurrent.futures.Future[asyncssh.SSHAcceptor],
    ) -> None:
        # On leaving, the runner cancels the sessions still running and closes the loop.
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            try:
                acceptor = runner.run(self._listen())
            except BaseException as error:
                ready.set_exception(error)
                return
            ready.set_result(acceptor)
            loop.run_forever()

    async def _listen(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            lambda: _SshServer(self, self._connections),
            self.host,
            self._requested_port,
            server_host_keys=[self._host_key],
            process_factory=self._serve,
            encoding="utf-8",
            errors="replace",
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
        )

    async def _close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        await self._abort_connections()
        if self._acceptor is not None:
            await self._acceptor.wait_closed()

    async def _abort_connections(self) -> None:
        for connection in list(self._connections):
            connection.abort()

    async def _serve(self, process: asyncssh.SSHServerProcess[str]) -> None:
        if process.command is not None or process.subsystem is not None:
            process.stderr.write("Only interactive shells are supported.\r\n")
            process.exit(1)
            return
        with self._lock:
            self._logins += 1
            session_id = self._logins
            session = shell.CliSession(self._device)
            greeting = session.greeting()
        try:
            _write(process, [greeting])
            await self._converse(process, session, session_id)
        except (asyncssh.Error, ConnectionError):
            # The client went away (or a fault dropped it) while the device was busy.
            return

    async def _converse(
        self,
        process: asyncssh.SSHServerProcess[str],
        session: shell.CliSession,
        session_id: int,
    ) -> None:
        editor = shell.LineEditor()
        while True:
            try:
                data = await process.stdin.read(4096)
            except asyncssh.TerminalSizeChanged:
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                data = "\x03"
            if not data:
                process.exit(0)
                return
            # What the lines of one read print goes out together, as sshd sends what it read
            # from a terminal at once: one SSH packet a line would cost a client thousands.
            output: list[str] = []
            for event in editor.feed(data):
                if isinstance(event, str):
                    output.append(event)
                elif not await self._run_line(process, session, session_id, event, output):
                    return
            _write(process, output)

    async def _run_line(
        self,
        process: asyncssh.SSHServerProcess[str],
        session: shell.CliSession,
        session_id: int,
        line: shell.Line,
        output: list[str],
    ) -> bool:
        """Run one received line through the faults and the CLI, its reply added to ``output``
        (sent first when the line is delayed or ends the session); False once the session ends."""
        with self._lock:
            action = self._faults.on_line(line.text)
            self._journal.append(
                JournalEntry(
                    session_id,
                    session.mode,
                    session.prompt,
                    line.text,
                    line.ending,
                    _fault_name(action),
                )
            )
        if action.drop is not None:
            _write(process, output)
        if action.drop == "transport":
            process.channel.get_connection().abort()
            return False
        if action.drop == "channel":
            process.channel.close()
            return False
        if action.delay:
            _write(process, output)
            await asyncio.sleep(action.delay)
        with self._lock:
            reply = session.reject(action.reject_text) if action.reject else session.handle(line)
        output.append(reply.output)
        if reply.close:
            _write(process, output)
            process.exit(0)
            return False
        return True


def _fault_name(action: faults.FaultAction) -> str | None:
    if action.drop:
        return "dropped"
    if action.reject:
        return "rejected"
    if action.delay:
        return "delayed"
    return None


def _write(process: asyncssh.SSHServerProcess[str], output: list[str]) -> None:
    """Send device text to the client as a terminal would (`\\n` becomes `\\r\\n`), and empty
    ``output``."""
    text = "".join(output)
    output.clear()
    if text:
        process.stdout.write(text.replace("\n", "\r\n"))
