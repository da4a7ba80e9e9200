"""Faults a test arms on a simulated ADC: refused lines, dropped connections, slow replies.

A rule's pattern must match the whole received line (leading and trailing blanks ignored),
as with `re.fullmatch`. Pure: this module decides; the server carries the decision out.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

__all__ = ["DropHow", "FaultAction", "FaultPlan"]

# "channel": close the SSH channel (the session ends, the TCP connection stays up);
# "transport": abort the TCP connection without any SSH goodbye.
DropHow = Literal["channel", "transport"]


@dataclasses.dataclass(frozen=True)
class FaultAction:
    """What to do with one received line, in this order: drop, else delay, then reject."""

    drop: DropHow | None = None
    delay: float = 0.0
    reject: bool = False
    # The device text for a rejection; None: the current mode's unknown-command text.
    reject_text: str | None = None


@dataclasses.dataclass
class _Rule:
    pattern: re.Pattern[str] | None
    remaining: int | None
    action: FaultAction

    def fires(self, line: str) -> bool:
        if self.remaining == 0:
            return False
        if self.pattern is not None and not self.pattern.fullmatch(line.strip()):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class FaultPlan:
    """The faults armed on one simulator (not thread-safe: the simulator locks)."""

    def __init__(self) -> None:
        self.refuse_auth = False
        self._rules: list[_Rule] = []
        self._drop_after: tuple[int, DropHow] | None = None

    def reject(self, pattern: str, text: str | None = None, times: int | None = None) -> None:
        """Answer lines matching `pattern` with `text` (e.g. `ERROR: ...` or `% ...`) instead
        of running them; `times` None: every time."""
        action = FaultAction(reject=True, reject_text=text)
        self._rules.append(_Rule(re.compile(pattern), times, action))

    def drop_on(self, pattern: str, how: DropHow = "channel", times: int | None = 1) -> None:
        """Drop the connection when a line matching `pattern` arrives (before running it)."""
        self._rules.append(_Rule(re.compile(pattern), times, FaultAction(drop=how)))

    def drop_after(self, lines: int, how: DropHow = "channel") -> None:
        """Run the next `lines` non-blank lines (any session), then drop the connection that
        sends one more. Blank lines (netmiko's prompt probes) do not count."""
        self._drop_after = (lines, how)

    def delay(self, seconds: float, pattern: str | None = None, times: int | None = None) -> None:
        """Wait `seconds` before answering lines matching `pattern` (None: every line). The
        echo of the typed line is not delayed, as on a busy device."""
        compiled = re.compile(pattern) if pattern is not None else None
        self._rules.append(_Rule(compiled, times, FaultAction(delay=seconds)))

    def clear(self) -> None:
        """Disarm every fault, including refused logins."""
        self.refuse_auth = False
        self._rules = []
        self._drop_after = None

    def on_line(self, line: str) -> FaultAction:
        """Decide what happens to a received line; consumes the rules that fire."""
        if self._drop_after is not None and line.strip():
            remaining, how = self._drop_after
            if remaining == 0:
                self._drop_after = None
                return FaultAction(drop=how)
            self._drop_after = (remaining - 1, how)
        for rule in self._rules:
            if rule.action.drop is not None and rule.fires(line):
                return rule.action
        delay, reject, reject_text = 0.0, False, None
        for rule in self._rules:
            if rule.action.drop is not None:
                continue
            if rule.action.delay and rule.fires(line):
                delay += rule.action.delay
            elif rule.action.reject and not reject and rule.fires(line):
                reject, reject_text = True, rule.action.reject_text
        return FaultAction(delay=delay, reject=reject, reject_text=reject_text)
