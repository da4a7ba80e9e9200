"""The lab's error types, in one module so every other lab module can raise them."""

__all__ = ["LabError", "LabTimeoutError"]


class LabError(RuntimeError):
    """A lab part failed to start, answer or stop; the message says which and why."""


class LabTimeoutError(LabError, TimeoutError):
    """A polled condition was not reached before its deadline."""
