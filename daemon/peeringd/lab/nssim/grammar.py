"""Command matching shared by the simulator's two shells (nscli and vtysh).

A command is a sequence of tokens: keywords, which the user may abbreviate to any unique
prefix, and `<placeholders>` checked by a validator (`<text...>` takes the rest of the line).
Pure: no I/O and no device state here.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

__all__ = ["Command", "Match", "NoMatch", "Word", "match", "split_words"]

Validator = Callable[[str], bool]


@dataclasses.dataclass(frozen=True)
class Word:
    """One word of an input line and the column it starts at (for the `^` marker)."""

    column: int
    text: str


@dataclasses.dataclass(frozen=True)
class Command:
    """A command's syntax (`"neighbor <ip> remote-as <asn>"`) and the action it names."""

    action: str
    syntax: str

    @functools.cached_property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self.syntax.split())


@dataclasses.dataclass(frozen=True)
class Match:
    """The command the line matched and the values of its placeholders, in order."""

    action: str
    args: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class NoMatch:
    """Why a line matched no command and at which word (len(words) when input ran out)."""

    reason: Literal["invalid", "ambiguous", "incomplete"]
    word_index: int


def split_words(line: str) -> list[Word]:
    """Split a line on whitespace, keeping each word's column."""
    return [Word(found.start(), found.group()) for found in re.finditer(r"\S+", line)]


def _is_placeholder(token: str) -> bool:
    return token.startswith("<")


def _is_rest(token: str) -> bool:
    return token.endswith("...>")


def _token_accepts(token: str, word: str, validators: Mapping[str, Validator], case_sensitive: bool) -> bool:
    if _is_rest(token):
        return True
    if _is_placeholder(token):
        return validators[token](word)
    if case_sensitive:
        return token.startswith(word)
    return token.lower().startswith(word.lower())


def _complete(tokens: tuple[str, ...], word_count: int) -> bool:
    if tokens and _is_rest(tokens[-1]):
        return word_count >= len(tokens)
    return word_count == len(tokens)


def _args(tokens: tuple[str, ...], words: Sequence[Word]) -> tuple[str, ...]:
    values: list[str] = []
    for index, token in enumerate(tokens):
        if _is_rest(token):
            values.append(" ".join(word.text for word in words[index:]))
        elif _is_placeholder(token):
            values.append(words[index].text)
    return tuple(values)


def match(
    words: Sequence[Word],
    commands: Sequence[Command],
    validators: Mapping[str, Validator],
    *,
    case_sensitive: bool,
) -> Match | NoMatch:
    """Find the one command the words spell, allowing unique-prefix abbreviation of keywords.

    An exact keyword wins over longer keywords it is a prefix of (`exit` over
    `exit-address-family`); two keywords the word abbreviates equally make it ambiguous.
    """
    fold: Callable[[str], str] = (lambda text: text) if case_sensitive else str.lower
    candidates = list(commands)
    for index, word in enumerate(words):
        survivors: list[Command] = []
        # Many candidates share a token here (`neighbor <ip> ...`): judge each token once.
        accepted: dict[str, bool] = {}
        for candidate in candidates:
            tokens = candidate.tokens
            if index < len(tokens):
                token = tokens[index]
                if token not in accepted:
                    accepted[token] = _token_accepts(token, word.text, validators, case_sensitive)
                if accepted[token]:
                    survivors.append(candidate)
            elif tokens and _is_rest(tokens[-1]):
                survivors.append(candidate)
        if not survivors:
            return NoMatch("invalid", index)
        keywords = {
            candidate.tokens[index]
            for candidate in survivors
            if index < len(candidate.tokens) and not _is_placeholder(candidate.tokens[index])
        }
        exact = {keyword for keyword in keywords if fold(keyword) == fold(word.text)}
        if exact:
            survivors = [
                candidate
                for candidate in survivors
                if index >= len(candidate.tokens)
                or _is_placeholder(candidate.tokens[index])
                or candidate.tokens[index] in exact
            ]
        elif len(keywords) > 1:
            return NoMatch("ambiguous", index)
        candidates = survivors
    for candidate in candidates:
        if _complete(candidate.tokens, len(words)):
            return Match(candidate.action, _args(candidate.tokens, words))
    return NoMatch("incomplete", len(words))
