"""Lines to a device's CLI and its replies, over the SSH channel netmiko opened.

A CLI answers every line it reads with exactly one prompt, in order, however fast
the lines arrive: the n-th prompt closes the n-th reply. So many lines can be
written at once and their replies still told apart, each attributed to its line
(netmiko's ``send_command`` waits for each echo and polls every 25 ms: about
40 ms a line, 78 s for 1,000 neighbours). At most ``window`` lines are
unanswered at any time, which keeps the replies (echo and prompt, some 60 bytes
a line) far below an SSH channel's window, so neither side blocks the other.

Reading blocks on the channel with a timeout instead of polling. Text is
decoded incrementally (a UTF-8 character may straddle two reads), and carriage
returns are dropped, as netmiko does.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["WINDOW", "ChannelClosed", "NoReply", "exchange"]

# Lines written before their replies are read: enough to hide every round trip, few
# enough that the replies in flight (about 30 KB) never fill an SSH window (2 MB).
WINDOW = 500
_READ_SIZE = 65536


class NoReply(Exception):
    """Nothing arrived for the timeout while ``line`` waited for its reply."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class ChannelClosed(Exception):
    """The channel closed while ``line`` waited for its reply."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class _Replies:
    """The device's text, cut into one reply per prompt as it arrives.

    Nothing counts before the echo of the first line: a prompt the login left unread
    would otherwise close the first reply early and shift every reply by one. A prompt
    counts only when what follows it on its line is the echo of the next line (or
    nothing, after the last): a reply line that merely looks like a prompt does not.
    """

    def __init__(self, prompt: str, lines: Sequence[str]) -> None:
        self._prompt = re.compile(rf"^(?:{prompt})[ \t]*", re.MULTILINE)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._echoes = [line.strip() for line in lines]
        self._synced = False
        self._text = ""  # what arrived after the last complete reply
        self._scan = 0  # where a prompt may still start: the last incomplete line
        self.done: list[str] = []

    def feed(self, data: bytes) -> None:
        self._text += self._decoder.decode(data).replace("\r", "")
        if not self._synced:
            found = self._text.find(self._echoes[0])
            if found < 0:
                return
            self._text, self._synced = self._text[found:], True
        start = 0
        for match in self._prompt.finditer(self._text, self._scan):
            end = self._text.find("\n", match.end())
            following = self._text[match.end() : end if end >= 0 else None].strip()
            index = len(self.done) + 1
            echo = self._echoes[index] if index < len(self._echoes) else ""
            if following != echo and (end >= 0 or not echo.startswith(following)):
                continue
            self.done.append(self._text[start : match.start()])
            start = match.end()
        # Keep only the unfinished reply: a batch's text never piles up.
        self._text = self._text[start:]
        self._scan = self._text.rfind("\n") + 1


def exchange(connection: Any, lines: Sequence[str], prompt: str, timeout: float) -> list[str]:
    """Write ``lines`` to the CLI, at most ``WINDOW`` unanswered, and return each one's reply
    in order: the text between its echo and the prompt that ends it (``prompt`` is a regex
    of every prompt the lines may lead to).

    Raises ``NoReply`` when nothing arrives for ``timeout`` seconds and ``ChannelClosed``
    when the channel closes, each naming the oldest line without a reply.
    """
    channel = connection.remote_conn
    replies = _Replies(prompt, lines)
    sent = 0
    while len(replies.done) < len(lines):
        answered = len(replies.done)
        if sent < len(lines) and sent - answered <= WINDOW // 2:
            batch = lines[sent : answered + WINDOW]
            connection.write_channel("".join(f"{line}\n" for line in batch))
            sent += len(batch)
        channel.settimeout(timeout)
        try:
            data = channel.recv(_READ_SIZE)
        except TimeoutError:
            raise NoReply(lines[answered]) from None
        if not data:
            raise ChannelClosed(lines[answered])
        replies.feed(data)
    return [_without_echo(reply, line) for line, reply in zip(lines, replies.done, strict=False)]


def _without_echo(reply: str, line: str) -> str:
    """The reply without the echo of its line (its first line) and the blank line ending it."""
    first, _, rest = reply.partition("\n")
    text = rest if first.strip() == line.strip() else reply
    return text.removesuffix("\n")
