"""The desired state as the runtime holds it: the file, its last good version, its git revision.

A file that does not parse or validate never replaces the last good state: the
daemon goes on with what it had and says loudly that its state is stale.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from peeringd.adapters import statefile
from peeringd.errors import StateFileError

__all__ = ["StateSource", "git_revision"]


def git_revision(path: Path) -> str | None:
    """The commit of the git repository holding ``path``, marked ``-dirty`` when the file
    differs from it; None outside a repository or without git."""
    folder = path.resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", path.resolve().name],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if changed else head


@dataclass
class StateSource:
    """The state file and the last version of it that was valid."""

    path: Path
    last_good: statefile.LoadedState | None = None
    revision: str | None = None
    error: StateFileError | None = field(default=None)

    @property
    def stale(self) -> bool:
        """The file on disk is not the state in use: it did not load."""
        return self.error is not None

    def reload(self) -> bool:
        """Read the file again; True when a new valid content replaced the last good one.

        On a bad file the last good state stays and ``error`` says why.
        """
        try:
            loaded = statefile.load(self.path)
        except StateFileError as error:
            self.error = error
            return False
        self.error = None
        # The state equal too: a rotated password file changes the state, not the file.
        if self.last_good is not None and (self.last_good.sha256, self.last_good.state) == (
            loaded.sha256,
            loaded.state,
        ):
            return False
        self.last_good = loaded
        self.revision = git_revision(self.path)
        return True
