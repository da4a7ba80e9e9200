"""Every error peeringd raises on purpose, in one place to avoid import loops.

Each error says what to do next: ``transient`` errors may succeed when retried
later (the daemon backs off and retries), the others need a human (fix the file,
the credentials, the RBAC rule). Messages are one line and never carry secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CalicoConflict",
    "CalicoError",
    "CalicoForbidden",
    "CalicoInvalid",
    "CalicoNotInstalled",
    "CalicoUnavailable",
    "CommandRejected",
    "DeviceAuthenticationFailed",
    "DeviceError",
    "DeviceTimeout",
    "DeviceUnreachable",
    "HostKeyMismatch",
    "KubeconfigError",
    "LeaseConflict",
    "LeaseError",
    "LeaseUnavailable",
    "LockHeld",
    "NotLeader",
    "OutputNotUnderstood",
    "PeeringdError",
    "RevertRefused",
    "SnapshotError",
    "SourceProblem",
    "StateFileError",
    "UnreadableReply",
    "VerificationFailed",
]


class PeeringdError(Exception):
    """Base of peeringd's own errors."""

    transient = False


@dataclass(frozen=True)
class SourceProblem:
    """One problem of the state file, located at a line and column (both 1-based)."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class StateFileError(PeeringdError):
    """The desired-state file does not parse or does not validate; nothing is applied."""

    def __init__(self, problems: Sequence[SourceProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class SnapshotError(PeeringdError):
    """A recorded live snapshot (``plan --live``) does not parse."""


class CalicoError(PeeringdError):
    """The Kubernetes API refused or failed a request about Calico's objects."""


class KubeconfigError(CalicoError):
    """No usable kubeconfig or in-cluster service account was found."""


class CalicoUnavailable(CalicoError):
    """The API server did not answer, timed out or failed (5xx): retry later."""

    transient = True


class CalicoNotInstalled(CalicoError):
    """Neither Calico API group is served: Calico is not installed in this cluster."""


class CalicoForbidden(CalicoError):
    """401 or 403: the daemon's identity lacks a permission; the message names the RBAC rule."""


class CalicoConflict(CalicoError):
    """409: the object changed since it was read; the next pass re-reads and re-plans."""

    transient = True


class CalicoInvalid(CalicoError):
    """422: the API server rejected an object; the message is the server's."""


class DeviceError(PeeringdError):
    """A device (ADC or router) refused, failed or could not be reached."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        super().__init__(f"{device}: {message}")


class DeviceAuthenticationFailed(DeviceError):
    """The device refused the username, password or key."""


class HostKeyMismatch(DeviceError):
    """The device's SSH host key is not the one in knownHostsFile: possibly not the device."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time: retry later."""

    transient = True


class DeviceUnreachable(DeviceError):
    """The SSH connection could not be made or dropped: retry later."""

    transient = True


class CommandRejected(DeviceError):
    """The device answered a line with an error; nothing after that line's batch was sent."""

    def __init__(self, device: str, line: str, reply: str) -> None:
        self.line = line
        self.reply = reply
        super().__init__(device, f"rejected {line!r}: {reply}")


class UnreadableReply(DeviceError):
    """The device's reply to a command could not be read with confidence (cut off, garbled,
    of an unknown form): the device is not observed this pass, so nothing is changed on it."""

    transient = True


class OutputNotUnderstood(PeeringdError):
    """A parser could not read device output with confidence. Parsers are pure and name no
    device: the driver reports this as ``UnreadableReply``."""

    transient = True


class VerificationFailed(PeeringdError):
    """After applying, the live state still differs from the desired state."""

    transient = True


class LockHeld(PeeringdError):
    """Another peeringd process holds the lock and may be writing."""


class LeaseError(PeeringdError):
    """The leader-election Lease could not be read or written (403, a missing namespace)."""


class LeaseUnavailable(LeaseError):
    """The API server did not answer about the Lease, or failed: retry at the next period."""

    transient = True


class LeaseConflict(LeaseError):
    """409: another daemon wrote the Lease since it was read; it won this round."""

    transient = True


class NotLeader(PeeringdError):
    """This daemon does not hold the lease, or cannot prove it still does: it writes nothing.

    Raised by the fence before a write session; the daemon that holds the lease writes instead.
    """

    transient = True


class RevertRefused(PeeringdError):
    """A guard refused the plan that undoes a pass (policy.confirm): the pass stays applied."""
