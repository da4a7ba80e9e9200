"""What makes the daemon run a pass before its interval: the state file and the Nodes.

The file's directory is watched, not the file: editors and ``git checkout``
replace the file by rename, ConfigMap mounts swap a ``..data`` symlink. Any
event there (editor scratch files aside) is debounced; the caller re-reads and
hashes the content and acts only when it changed. Nodes are watched through
the Kubernetes API; a pass is asked for when a selected node joins, leaves or
changes the address or AS it peers from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from peeringd.adapters.calico import Calico
from peeringd.core import live
from peeringd.errors import PeeringdError

__all__ = ["FileWatcher", "NodeWatcher"]

log = structlog.get_logger("peeringd")

# Vim's swap and probe files, Emacs' lock and backup files.
_SCRATCH_SUFFIXES = (".swp", ".swx", ".swpx", "~", ".tmp")
_SCRATCH_NAMES = ("4913",)


def _is_scratch(path: str) -> bool:
    name = Path(path).name
    return name.endswith(_SCRATCH_SUFFIXES) or name in _SCRATCH_NAMES or name.startswith(".#")


class FileWatcher(FileSystemEventHandler):
    """Calls ``on_change`` once the state file's directory has been quiet for ``quiet`` seconds."""

    def __init__(self, path: Path, on_change: Callable[[], None], *, quiet: float = 0.3) -> None:
        # Not resolved: a ConfigMap's file is a symlink into a folder that is replaced.
        self._directory = path.absolute().parent
        self._on_change = on_change
        self._quiet = quiet
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._observer = Observer()

    def start(self) -> None:
        self._observer.schedule(self, str(self._directory), recursive=False)
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in {"opened", "closed_no_write"}:
            return  # reading the file is not changing it
        paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
        if all(_is_scratch(path) for path in paths if path):
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._quiet, self._on_change)
            self._timer.daemon = True
            self._timer.start()


class NodeWatcher:
    """Watches the selected Nodes and calls ``on_change`` when the set of speakers may have changed."""

    def __init__(
        self,
        calico: Calico,
        selector: Callable[[], str],
        on_change: Callable[[str], None],
        *,
        timeout_seconds: int = 60,
    ) -> None:
        self._calico = calico
        self._selector = selector
        self._on_change = on_change
        self._timeout = timeout_seconds
        self._stop = threading.Event()
        # A daemon thread: a watch blocked on the socket must not delay the process's exit.
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        known: dict[str, live.Node] | None = None
        failures = 0
        while not self._stop.is_set():
            selector = self._selector()
            try:
                nodes, version = self._calico.list_nodes(selector)
                listed = {node.name: node for node in nodes}
                if known is not None and listed != known:
                    self._on_change("nodes changed while the watch was down")
                known = listed
                for kind, node in self._calico.watch_nodes(selector, version, timeout_seconds=self._timeout):
                    failures = 0
                    if self._stop.is_set() or selector != self._selector():
                        break
                    if kind == "DELETED":
                        if known.pop(node.name, None) is not None:
                            self._on_change(f"node {node.name} left")
                    elif known.get(node.name) != node:
                        joined = node.name not in known
                        known[node.name] = node
                        self._on_change(f"node {node.name} {'joined' if joined else 'changed'}")
            except PeeringdError as error:
                failures += 1
                delay = min(2.0**failures, 60.0)
                log.warning("node watch failed", error=str(error), retry_in=delay)
                self._stop.wait(delay)
