"""One login session on the simulated ADC: keystrokes in, echo and replies out.

`LineEditor` plays the terminal (echo, CR/LF, backspace, Ctrl-C/Ctrl-Z); `CliSession` plays
nscli and vtysh on top of a shared `Device`. Text uses `\\n`; the transport turns it into
`\\r\\n`. Pure: no I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

from peeringd.lab.nssim import grammar, vtysh
from peeringd.lab.nssim.device import Device

__all__ = ["CliSession", "Line", "LineEditor", "Mode", "Reply"]

Mode = Literal["nscli", "vtysh", "config", "config-router", "config-router-af"]
Ending = Literal["enter", "interrupt", "suspend"]

_INTERRUPT, _SUSPEND, _ESCAPE, _DELETE = "\x03", "\x1a", "\x1b", ("\x7f", "\x08")
# Keys that finish a line: what the terminal echoes, and how the line ended.
_ENDINGS: dict[str, tuple[str, Ending]] = {
    "\r": ("\n", "enter"),
    "\n": ("\n", "enter"),
    _INTERRUPT: ("^C\n", "interrupt"),
    _SUSPEND: ("^Z\n", "suspend"),
}
# vtysh prompts with the hostname `ns` (`ns#`, `ns(config)#`) whatever nscli's prompt is.
_VTYSH_HOSTNAME = "ns"


@dataclasses.dataclass(frozen=True)
class Line:
    """A line the user finished: with Enter, Ctrl-C (interrupt) or Ctrl-Z (suspend)."""

    text: str
    ending: Ending = "enter"


class LineEditor:
    """Turn received characters into echo text and finished lines, like a CLI in raw mode.

    CR, LF and CR LF each end one line. Other control characters (NUL from netmiko's
    is_alive, Tab) and ANSI escape sequences (arrow keys) are swallowed.
    """

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._after_cr = False
        self._escape: Literal["", "esc", "csi"] = ""

    def feed(self, data: str) -> list[str | Line]:
        """Echo text (str) and finished lines (Line), in the order they happened."""
        if not self._escape and not self._after_cr and data.replace("\n", "").isprintable():
            return self._feed_plain(data)
        events: list[str | Line] = []
        echo: list[str] = []
        for char in data:
            shown, ending = self._take(char)
            echo.append(shown)
            if ending is not None:
                events.append("".join(echo))
                echo.clear()
                events.append(Line("".join(self._buffer), ending))
                self._buffer.clear()
        if trailing := "".join(echo):
            events.append(trailing)
        return events

    def _feed_plain(self, data: str) -> list[str | Line]:
        """``feed`` for printable text and LFs alone (what a client pasting lines sends): each
        character echoes as itself, so whole lines at a time, not thousands of characters."""
        events: list[str | Line] = []
        *finished, rest = data.split("\n")
        for text in finished:
            events += [f"{text}\n", Line("".join(self._buffer) + text)]
            self._buffer.clear()
        if rest:
            events.append(rest)
            self._buffer.extend(rest)
        return events

    def _take(self, char: str) -> tuple[str, Ending | None]:
        """One character: what to echo, and how it ends the line (None: it does not)."""
        after_cr, self._after_cr = self._after_cr, False
        if self._escape:
            if self._escape == "esc":
                self._escape = "csi" if char == "[" else ""
            elif char.isalpha() or char == "~":
                self._escape = ""
            return "", None
        if char == "\n" and after_cr:
            return "", None
        if char in _ENDINGS:
            self._after_cr = char == "\r"
            return _ENDINGS[char]
        if char in _DELETE:
            if not self._buffer:
                return "", None
            self._buffer.pop()
            return "\b \b", None
        if char == _ESCAPE:
            self._escape = "esc"
        elif char.isprintable():
            self._buffer.append(char)
            return char, None
        return "", None


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the device prints after a line (ending with the next prompt); close: log out."""

    output: str
    close: bool = False


_NSCLI_COMMANDS = [
    grammar.Command("enable-feature", "enable ns feature <features...>"),
    grammar.Command("enable-feature", "enable feature <features...>"),
    grammar.Command("disable-feature", "disable ns feature <features...>"),
    grammar.Command("disable-feature", "disable feature <features...>"),
    grammar.Command("show-feature", "show ns feature"),
    grammar.Command("show-feature", "show feature"),
    grammar.Command("show-version", "show ns version"),
    grammar.Command("show-version", "show version"),
    grammar.Command("show-route", "show route"),
    grammar.Command("show-ha-node", "show ha node"),
    grammar.Command("save-config", "save ns config"),
    grammar.Command("save-config", "save config"),
    grammar.Command("set-cli-mode", "set cli mode -page <word>"),
    grammar.Command("vtysh", "vtysh"),
    grammar.Command("logout", "exit"),
    grammar.Command("logout", "quit"),
]

_EXEC_COMMANDS = [
    grammar.Command("configure", "configure terminal"),
    grammar.Command("show-running-config", "show running-config"),
    # Standard in ZebOS and Quagga; unverified on NetScaler.
    grammar.Command("show-startup-config", "show startup-config"),
    grammar.Command("show-bgp-summary", "show ip bgp summary"),
    grammar.Command("write", "write"),
    grammar.Command("write", "write memory"),
    grammar.Command("write", "copy running-config startup-config"),
    grammar.Command("leave", "exit"),
    grammar.Command("leave", "quit"),
    grammar.Command("end", "end"),
]

# Exec commands that `do` may run from a config mode (not the ones that move between modes).
_DO_COMMANDS = [command for command in _EXEC_COMMANDS if command.action.startswith(("show", "write"))]


class _NscliError(Exception):
    """nscli refused a command; the text is its `ERROR: ...` line."""


class CliSession:
    """The shells of one SSH session to an ADC, from login to logout."""

    def __init__(self, device: Device) -> None:
        self._device = device
        self.mode: Mode = "nscli"
        self.paging = True

    @property
    def prompt(self) -> str:
        """The prompt the device shows in the current mode."""
        if self.mode == "nscli":
            return self._device.profile.prompt
        if self.mode == "vtysh":
            return f"{_VTYSH_HOSTNAME}#"
        return f"{_VTYSH_HOSTNAME}({self.mode})#"

    def greeting(self) -> str:
        """What the device prints once the shell starts: banner, ` Done`, prompt."""
        banner = self._device.profile.banner
        return (f"{banner}\n" if banner else "") + " Done\n" + self.prompt

    def handle(self, line: Line) -> Reply:
        """Run one line in the current mode."""
        if self.mode == "nscli":
            if line.ending != "enter" or not line.text.strip():
                return Reply(self.prompt)
            return self._nscli(line.text)
        if line.ending == "interrupt" or (line.ending == "suspend" and self.mode == "vtysh"):
            return Reply(self.prompt)
        if line.ending == "suspend":
            self.mode = "vtysh"
            return Reply(self.prompt)
        prompt = self.prompt
        try:
            output = self._vtysh(line.text)
        except vtysh.CommandRejected as rejected:
            marker = ""
            if rejected.word_index is not None:
                words = grammar.split_words(line.text)
                column = (
                    words[rejected.word_index].column if rejected.word_index < len(words) else len(line.text)
                )
                marker = " " * (len(prompt) + column) + "^\n"
            return Reply(f"{marker}{rejected.text}\n{self.prompt}")
        return Reply(f"{output}\n{self.prompt}" if output else self.prompt)

    def reject(self, text: str | None) -> Reply:
        """Refuse a line with `text`, or with this mode's unknown-command message."""
        texts = self._device.profile.texts
        default = texts.unknown_command if self.mode == "nscli" else texts.invalid_input
        return Reply(f"{text or default}\n{self.prompt}")

    def _nscli(self, text: str) -> Reply:
        texts = self._device.profile.texts
        result = grammar.match(
            grammar.split_words(text), _NSCLI_COMMANDS, vtysh.VALIDATORS, case_sensitive=False
        )
        if isinstance(result, grammar.NoMatch):
            message = {
                "invalid": texts.unknown_command,
                "ambiguous": texts.ambiguous_command,
                "incomplete": texts.missing_argument,
            }[result.reason]
            return Reply(f"{message}\n{self.prompt}")
        if result.action == "logout":
            return Reply("", close=True)
        if result.action == "vtysh":
            self.mode = "vtysh"
            return Reply(self.prompt)
        handlers: dict[str, Callable[[tuple[str, ...]], str]] = {
            "enable-feature": lambda args: self._set_features(args[0], enabled=True),
            "disable-feature": lambda args: self._set_features(args[0], enabled=False),
            "show-feature": lambda args: self._device.show_features(),
            "show-version": lambda args: f"\t{self._device.profile.version}",
            "show-route": lambda args: self._device.show_route(),
            "show-ha-node": lambda args: self._device.show_ha_node(),
            "save-config": lambda args: self._save_all(),
            "set-cli-mode": lambda args: self._set_paging(args[0]),
        }
        try:
            body = handlers[result.action](result.args)
        except _NscliError as error:
            return Reply(f"{error}\n{self.prompt}")
        return Reply(f"{body}\n Done\n{self.prompt}" if body else f" Done\n{self.prompt}")

    def _set_features(self, names: str, *, enabled: bool) -> str:
        try:
            acronyms = [self._device.feature_acronym(name) for name in names.split()]
        except KeyError:
            raise _NscliError(self._device.profile.texts.invalid_feature) from None
        for acronym in acronyms:
            self._device.running.features[acronym] = enabled
        return ""

    def _save_all(self) -> str:
        self._device.save_all()
        return ""

    def _set_paging(self, value: str) -> str:
        if value.upper() not in ("ON", "OFF"):
            raise _NscliError(self._device.profile.texts.invalid_argument)
        self.paging = value.upper() == "ON"
        return ""

    def _vtysh(self, text: str) -> str:
        """Run a vtysh line; the output without the prompt. Raises CommandRejected."""
        words = grammar.split_words(text)
        if not words or words[0].text.startswith("!"):
            return ""
        if self.mode == "vtysh":
            return self._exec(words, _EXEC_COMMANDS)
        if words[0].text == "do":
            return self._exec(words, _DO_COMMANDS, skip=1)
        mode = self.mode
        if mode == "nscli":
            raise AssertionError("a vtysh line reached the nscli session")
        self.mode = vtysh.apply_config_line(
            self._device.running.zebos, mode, text, self._device.config_rules()
        )
        self._device.track_neighbors()
        return ""

    def _exec(self, words: list[grammar.Word], commands: list[grammar.Command], skip: int = 0) -> str:
        texts = self._device.profile.texts
        result = grammar.match(words[skip:], commands, vtysh.VALIDATORS, case_sensitive=True)
        if isinstance(result, grammar.NoMatch):
            rejected = vtysh.rejection(result, texts)
            if rejected.word_index is not None:
                rejected.word_index += skip
            raise rejected
        if result.action == "configure":
            self.mode = "config"
            return texts.vtysh_config_banner
        if result.action == "leave":
            self.mode = "nscli"
            return " Done"
        if result.action == "show-running-config":
            return self._device.running.zebos.render()
        if result.action == "show-startup-config":
            return self._device.saved.zebos.render()
        if result.action == "show-bgp-summary":
            if not self._device.bgp_running():
                raise vtysh.CommandRejected(texts.bgp_feature_disabled)
            return self._device.show_bgp_summary()
        if result.action == "write":
            self._device.save_zebos()
            return texts.vtysh_write
        return ""
