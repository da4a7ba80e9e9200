"""What every parser of device replies does first: split the lines, and refuse a reply that a
terminal would show otherwise than it reads.

A control character in a reply (a terminal escape sequence, a pager's backspaces or carriage
returns that redraw a line, a NUL) means the text read is not the text the device meant: the
parsers refuse it rather than guess. CRLF line ends are not such a sign and are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from peeringd.errors import OutputNotUnderstood

__all__ = ["check_line", "clean", "lines", "shown", "split"]

# Tab is the one control character device output uses on purpose (NetScaler's show ha node).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# The same characters but LF, in a whole reply: one scan of the text instead of one search per
# line. A CR too, even one that ``split`` drops before an LF (the terminal has dropped them
# already): a reply with one is checked line by line.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def lines(text: str, command: str) -> Iterator[str]:
    """The lines of ``command``'s reply, without their line ends; raises OutputNotUnderstood
    on reaching one that holds a control character."""
    checked = not clean(text)
    for number, line in enumerate(split(text), 1):
        if checked:
            check_line(line, number, command)
        yield line


def split(text: str) -> Iterator[str]:
    """The lines of ``text`` without their line ends (LF or CRLF), one at a time: the reply of
    a device with thousands of neighbours is not held a second time as a list of lines, whose
    few MB the daemon would otherwise keep as its size once the pass is over."""
    start = 0
    while (end := text.find("\n", start)) != -1:
        yield text[start:end].rstrip("\r")
        start = end + 1
    yield text[start:].rstrip("\r")


def clean(text: str) -> bool:
    """Whether no line of ``text`` holds a control character: when so (nearly always), its
    thousands of lines need no ``check_line`` each."""
    return _CONTROL_IN_TEXT.search(text) is None


def check_line(line: str, number: int, command: str) -> None:
    """Raise OutputNotUnderstood when ``line`` (line ``number`` of the reply) holds a control character."""
    if match := _CONTROL.search(line):
        raise OutputNotUnderstood(
            f"{command}: line {number} holds control character U+{ord(match.group()):04X} "
            f"(a terminal escape or a pager's?): {shown(line)}"
        )


def shown(line: str) -> str:
    """``line`` for a one-line message: its repr, clipped."""
    return repr(line if len(line) <= 60 else line[:57] + "...")
