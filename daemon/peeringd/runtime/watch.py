"""What makes the daemon run a pass before its interval: the state file and the Nodes.

The file's directory is watched, not the file: editors and ``git checkout``
replace the file by rename, ConfigMap mounts swap a ``..data`` symlink. Any
event there (editor scratch files aside) is debounced; the caller re-reads and
hashes the content and acts only when it changed. Nodes are kept in a cache
that a watch through the Kubernetes API keeps current (an informer): a pass
reads it instead of listing the Nodes, and is asked for when a selected node
joins, leaves or changes the address or AS it peers from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from peeringd.adapters.calico import Calico, NodeEvent
from peeringd.core import live
from peeringd.errors import CalicoConflict, PeeringdError

__all__ = ["FileWatcher", "NodeCache"]

log = structlog.get_logger("peeringd")

# Nodes a page when the cache lists them, as client-go's informers do: the whole list's
# JSON at once (some 15 MB at 5,000 nodes) would set the daemon's size for good.
_PAGE = 500

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


class NodeCache:
    """The selected Nodes, listed once and kept current by a watch: what a pass reads.

    The Nodes are listed, then watched from the list's resourceVersion; each event
    updates the copy, and ``on_change`` is called when a node joins, leaves or changes
    the address or AS it peers from (other Node updates, such as heartbeats, change
    nothing peeringd reads). When the server ends a watch (every ``timeout_seconds``) it
    is opened again from the last resourceVersion seen, which bookmarks keep recent: the
    Nodes are listed again only on 410 Gone (the server no longer has that history) or
    when the file's selector changed. ``nodes()`` answers while the watch is open, and
    None while it is not (the pass then lists the Nodes itself).
    """

    def __init__(
        self,
        calico: Calico,
        selector: Callable[[], str],
        on_change: Callable[[str], None],
        *,
        timeout_seconds: int = 300,
    ) -> None:
        self._calico = calico
        self._selector = selector
        self._on_change = on_change
        self._timeout = timeout_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._known: dict[str, live.Node] = {}
        self._snapshot: tuple[live.Node, ...] | None = None  # the copy as a pass reads it
        self._listed_with: str | None = None  # the selector of the copy; None: no copy
        self._live = False  # a watch keeps the copy current
        self._opened = threading.Event()  # a watch was open at least once
        # A daemon thread: a watch blocked on the socket must not delay the process's exit.
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._calico.close()

    def wait(self, timeout: float) -> bool:
        """Wait until the first watch is open (the daemon's first pass then lists nothing)."""
        return self._opened.wait(timeout)

    def nodes(self, selector: str) -> tuple[live.Node, ...] | None:
        """The Nodes ``selector`` selects while the watch keeps them current, else None."""
        with self._lock:
            if not self._live or selector != self._listed_with:
                return None
            if self._snapshot is None:
                self._snapshot = tuple(self._known.values())
            return self._snapshot

    def _run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stop.is_set():
            selector = self._selector()
            try:
                if version is None or selector != self._listed_with:
                    version = self._list(selector)
                events = self._calico.watch_nodes(selector, version, timeout_seconds=self._timeout)
                with self._lock:
                    self._live = True
                self._opened.set()
                failures = 0
                for event in events:
                    if self._stop.is_set() or selector != self._selector():
                        break
                    version = event.resource_version or version
                    self._apply(event)
            except CalicoConflict as expired:
                log.info("node watch expired", reason=str(expired))
                self._set_live(False)
                version = None
            except PeeringdError as error:
                self._set_live(False)
                failures += 1
                delay = min(2.0**failures, 60.0)
                log.warning("node watch failed", error=str(error), retry_in=delay)
                self._stop.wait(delay)

    def _list(self, selector: str) -> str:
        """Replace the copy with a fresh list; a pass is asked for when it differs."""
        nodes, version = self._calico.list_nodes(selector, page=_PAGE)
        listed = {node.name: node for node in nodes}
        with self._lock:
            changed = self._listed_with is not None and listed != self._known
            self._known, self._snapshot, self._listed_with = listed, None, selector
        if changed:
            self._on_change("nodes changed while the watch was down")
        return version

    def _apply(self, event: NodeEvent) -> None:
        node = event.node
        if node is None:  # a bookmark
            return
        with self._lock:
            before = self._known.get(node.name)
            if event.kind == "DELETED":
                self._known.pop(node.name, None)
            else:
                self._known[node.name] = node
            changed = (before is not None) if event.kind == "DELETED" else before != node
            if changed:
                self._snapshot = None
        if not changed:
            return
        if event.kind == "DELETED":
            self._on_change(f"node {node.name} left")
        else:
            self._on_change(f"node {node.name} {'joined' if before is None else 'changed'}")

    def _set_live(self, value: bool) -> None:
        with self._lock:
            self._live = value
