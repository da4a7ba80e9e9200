"""A TCP forwarder from 127.0.0.1 in the root namespace to an address inside a lab namespace.

The daemon under test runs in the root namespace and may only talk to 127.0.0.1 there. For
each accepted connection the forwarder creates the outgoing socket inside the target
namespace: setns(2) moves only the calling thread, and a socket stays in the namespace it was
created in, so the thread enters the namespace, creates the socket and returns at once.
Python 3.11 has no os.setns, hence ctypes.

Not here: listening anywhere but 127.0.0.1, or touching the root namespace's interfaces.
"""

import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import LabError

__all__ = ["TcpForwarder"]

_CLONE_NEWNET = 0x40000000
_CONNECT_TIMEOUT = 10.0
_CHUNK = 65536
_libc = ctypes.CDLL(None, use_errno=True)


def _connect_in_namespace(namespace_path: Path, address: tuple[str, int]) -> socket.socket:
    """A TCP connection to `address` as seen from inside the namespace at `namespace_path`."""
    with _thread_in_namespace(namespace_path):
        outgoing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        outgoing.settimeout(_CONNECT_TIMEOUT)
        outgoing.connect(address)
        outgoing.settimeout(None)
    except OSError:
        outgoing.close()
        raise
    return outgoing


@contextmanager
def _thread_in_namespace(namespace_path: Path) -> Iterator[None]:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(namespace_path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            # A thread left in the lab namespace would leak it into unrelated work: fail loudly.
            _setns(home)
    finally:
        os.close(home)


def _setns(fd: int) -> None:
    if int(_libc.setns(fd, _CLONE_NEWNET)) != 0:
        errno = ctypes.get_errno()
        raise LabError(f"setns(CLONE_NEWNET) failed: {os.strerror(errno)}")


class TcpForwarder:
    """Accepts on 127.0.0.1:<ephemeral port>; pipes each connection to `target` in the namespace.

    Call `start`, then `close` (which is safe also when `start` never ran).
    """

    def __init__(self, namespace_path: Path, target: tuple[str, int]) -> None:
        self._namespace_path = namespace_path
        self._target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"bgplab-forward-{self.port}", daemon=True
        )

    def start(self) -> None:
        """Start accepting."""
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting, cut every open connection and wait for the pump threads."""
        with self._lock:
            self._closed = True
            open_sockets = list(self._sockets)
        # On Linux, shutdown() wakes a thread blocked in accept(); close() alone does not.
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in open_sockets:
            _shutdown(sock)
        if self._acceptor.is_alive():
            self._acceptor.join()
        for thread in self._threads:
            thread.join()

    def _accept_loop(self) -> None:
        while True:
            try:
                incoming, _ = self._listener.accept()
            except OSError:
                return
            try:
                outgoing = _connect_in_namespace(self._namespace_path, self._target)
            except OSError:
                incoming.close()
                continue
            self._pipe(incoming, outgoing)

    def _pipe(self, incoming: socket.socket, outgoing: socket.socket) -> None:
        with self._lock:
            if self._closed:
                incoming.close()
                outgoing.close()
                return
            self._sockets |= {incoming, outgoing}
            done = threading.Barrier(2, action=lambda: self._forget(incoming, outgoing))
            for source, sink in ((incoming, outgoing), (outgoing, incoming)):
                thread = threading.Thread(
                    target=_pump, args=(source, sink, done), name="bgplab-pump", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
                sock.close()


def _pump(source: socket.socket, sink: socket.socket, done: threading.Barrier) -> None:
    """Copy bytes until EOF or error, then pass the half-close on."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        _shutdown(source)
    finally:
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        done.wait()


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
