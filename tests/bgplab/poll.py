"""Waiting for lab state by polling with a deadline (never a fixed sleep)."""

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import LabTimeoutError

__all__ = ["until"]

_T = TypeVar("_T")


def until(
    observe: Callable[[], _T],
    accept: Callable[[_T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> _T:
    """Call `observe` until `accept` takes its result; return that result.

    Raises LabTimeoutError naming `what` and the last observation once `timeout` seconds have
    passed. Exceptions from `observe` propagate (a dead daemon should fail fast, not time out).
    """
    deadline = time.monotonic() + timeout
    while True:
        observed = observe()
        if accept(observed):
            return observed
        if time.monotonic() >= deadline:
            raise LabTimeoutError(f"{what}: not reached within {timeout:g}s; last seen: {observed!r}")
        time.sleep(interval)
