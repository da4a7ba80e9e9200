"""An sshd in the lab router's namespace whose every session is that router's FRR vtysh.

The login user exists only inside sshd's own mount namespace: sshd starts under private bind
mounts of a minimal passwd, group and shadow written into the lab's work dir, with tmpfs over
/run (for its privilege-separation dir /run/sshd and utmp) and over /var/log (wtmp, lastlog).
So the lab adds no user to the machine, leaves no login records and nothing to clean up after a
crash. The user has frr's uid and gid and is in group frrvty: vtysh reaches the vty sockets, and
`write memory` leaves frr.conf frr's. A real router has watchfrr write frr.conf as root and hand
it to frr; the lab runs no watchfrr, so vtysh writes the file itself, and as any other user it
would fail to chown the file and answer "% Warning: can't chown configuration file".
Clients log in with a per-run password or key; ForceCommand puts every session, interactive
or exec, into vtysh for this lab's FRR instance.

Not here: reaching sshd from the root namespace (see forward.py).
"""

import ctypes
import ctypes.util
import grp
import ipaddress
import os
import pwd
import secrets
import shlex
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import poll
from .errors import LabError
from .netns import Namespace
from .process import Daemon, run

__all__ = ["LOGIN_USER", "SshLogin", "VtyshSshServer"]

LOGIN_USER = "peeringd-lab"

_SSHD = "/usr/sbin/sshd"
_VTY_GROUP = "frrvty"
_SHADOW_GROUP = "shadow"
_FRR_USER = "frr"
_PRIVSEP_UID = 65534
_START_TIMEOUT = 10.0
# Run inside `unshare --mount`: give sshd a private /run, /var/log and user database.
_SSHD_PRELUDE = """set -e
mount -t tmpfs -o mode=0755 lab-run /run
mkdir -m 0755 /run/sshd
mount -t tmpfs -o mode=0755 lab-log /var/log
for name in passwd group shadow; do mount --bind "$0/$name" "/etc/$name"; done
exec "$1" -D -e -f "$0/sshd_config"
"""


@dataclass(frozen=True)
class SshLogin:
    """Everything a client needs to log in to the lab router as the vtysh user."""

    host: str
    port: int
    username: str
    password: str
    key_file: Path
    known_hosts: Path


class VtyshSshServer:
    """sshd listening on `listen`:`port` inside `namespace`; sessions run `vtysh_command`."""

    def __init__(
        self,
        namespace: Namespace,
        workdir: Path,
        *,
        listen: ipaddress.IPv4Address,
        vtysh_command: Sequence[str],
        port: int = 22,
    ) -> None:
        self.namespace = namespace
        self.listen = listen
        self.port = port
        self.password = secrets.token_urlsafe(16)
        self._vtysh_command = list(vtysh_command)
        self._workdir = workdir
        self._ssh_dir = workdir / "ssh"
        self.key_file = self._ssh_dir / "client_ed25519_key"
        self._daemon: Daemon | None = None

    def start(self) -> None:
        """Write keys, user database and config, start sshd and wait until it listens."""
        self._ssh_dir.mkdir(mode=0o711)
        # Both the privileged monitor (as the login user) and vtysh must get through.
        self._ssh_dir.chmod(0o711)
        frr = pwd.getpwnam(_FRR_USER)
        home = self._workdir / "home"
        home.mkdir(mode=0o700)
        os.chown(home, frr.pw_uid, frr.pw_gid)
        for key in (self._ssh_dir / "host_ed25519_key", self.key_file):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "peeringd-lab", "-f", str(key)])
        self._write("authorized_keys", self.key_file.with_suffix(".pub").read_text(), 0o644)
        self._write_user_database(home)
        self._write("vtysh-login", self._login_script(), 0o755)
        self._write("sshd_config", self._sshd_config(), 0o644)
        argv = ["unshare", "--mount", "--propagation", "private", "--"]
        argv += ["sh", "-c", _SSHD_PRELUDE, str(self._ssh_dir), _SSHD]
        self._daemon = Daemon(
            f"{self.namespace.name}/sshd",
            self.namespace.command(argv),
            log_path=self._workdir / "sshd.log",
            namespace_path=self.namespace.path,
            pid_file=self._ssh_dir / "sshd.pid",
        )
        self._daemon.start()
        poll.until(self._listening, bool, timeout=_START_TIMEOUT, what="sshd listens")

    def stop(self) -> None:
        """Stop sshd (sessions in the namespace go with the namespace)."""
        if self._daemon is not None:
            self._daemon.stop()

    def host_key_line(self) -> str:
        """sshd's public host key, as `<type> <base64>`."""
        public = (self._ssh_dir / "host_ed25519_key.pub").read_text().split()
        return f"{public[0]} {public[1]}"

    def login(self, host: str, port: int) -> SshLogin:
        """Login details for a client that reaches this sshd at `host`:`port`."""
        known_hosts = self._ssh_dir / f"known_hosts_{host}_{port}"
        known_hosts.write_text(f"[{host}]:{port} {self.host_key_line()}\n")
        return SshLogin(
            host=host,
            port=port,
            username=LOGIN_USER,
            password=self.password,
            key_file=self.key_file,
            known_hosts=known_hosts,
        )

    def _listening(self) -> bool:
        assert self._daemon is not None
        self._daemon.check_running()
        return "Server listening on" in self._daemon.log_path.read_text(errors="replace")

    def _write(self, name: str, text: str, mode: int) -> None:
        path = self._ssh_dir / name
        path.write_text(text)
        path.chmod(mode)

    def _write_user_database(self, home: Path) -> None:
        frr = pwd.getpwnam(_FRR_USER)
        vty_gid = grp.getgrnam(_VTY_GROUP).gr_gid
        shadow_gid = grp.getgrnam(_SHADOW_GROUP).gr_gid
        passwd = [
            "root:x:0:0:root:/root:/bin/sh",
            f"sshd:x:{_PRIVSEP_UID}:{_PRIVSEP_UID}:sshd privsep:/run/sshd:/usr/sbin/nologin",
            # Before frr's line: vtysh names the user by uid for PAM, and shadow holds this one.
            f"{LOGIN_USER}:x:{frr.pw_uid}:{frr.pw_gid}:peeringd BGP lab:{home}:/bin/sh",
            f"{_FRR_USER}:x:{frr.pw_uid}:{frr.pw_gid}:FRR:/nonexistent:/usr/sbin/nologin",
        ]
        group = [
            "root:x:0:",
            f"nogroup:x:{_PRIVSEP_UID}:",
            f"{_FRR_USER}:x:{frr.pw_gid}:",
            f"{_VTY_GROUP}:x:{vty_gid}:{LOGIN_USER}",
            f"{_SHADOW_GROUP}:x:{shadow_gid}:",
        ]
        today = int(time.time() // 86400)
        shadow = ["root:!:1::::::", f"{LOGIN_USER}:{_sha512_crypt(self.password)}:{today}:0:99999:7:::"]
        self._write("passwd", "\n".join(passwd) + "\n", 0o644)
        self._write("group", "\n".join(group) + "\n", 0o644)
        # vtysh runs PAM's account check for its user; pam_unix reads shadow through the
        # setgid-shadow unix_chkpwd helper, so, as on a real router, the group may read it.
        self._write("shadow", "\n".join(shadow) + "\n", 0o640)
        os.chown(self._ssh_dir / "shadow", 0, shadow_gid)

    def _login_script(self) -> str:
        vtysh = shlex.join(self._vtysh_command)
        return (
            "#!/bin/sh\n"
            "# Every session on the lab router is FRR's vtysh for this lab's FRR instance.\n"
            'if [ -n "$SSH_ORIGINAL_COMMAND" ]; then\n'
            f'    exec {vtysh} -c "$SSH_ORIGINAL_COMMAND"\n'
            "fi\n"
            f"exec {vtysh}\n"
        )

    def _sshd_config(self) -> str:
        ssh_dir = self._ssh_dir
        return f"""\
ListenAddress {self.listen}:{self.port}
HostKey {ssh_dir}/host_ed25519_key
PidFile {ssh_dir}/sshd.pid
AllowUsers {LOGIN_USER}
AuthorizedKeysFile {ssh_dir}/authorized_keys
# The lab's files live under /tmp, which StrictModes refuses as world-writable.
StrictModes no
# Passwords are checked against the private shadow file, not the machine's PAM stack.
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
ForceCommand {ssh_dir}/vtysh-login
DisableForwarding yes
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
"""


def _sha512_crypt(password: str) -> str:
    """crypt(3) SHA-512 hash via libcrypt (Python's crypt module is deprecated)."""
    library = ctypes.util.find_library("crypt")
    if library is None:
        raise LabError("libcrypt not found: cannot hash the lab login's password")
    libcrypt = ctypes.CDLL(library)
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    alphabet = string.ascii_letters + string.digits + "./"
    salt = "$6$" + "".join(secrets.choice(alphabet) for _ in range(16)) + "$"
    hashed = libcrypt.crypt(password.encode(), salt.encode())
    if not isinstance(hashed, bytes) or not hashed.startswith(b"$6$"):
        raise LabError("libcrypt could not hash the lab login's password")
    return hashed.decode()
