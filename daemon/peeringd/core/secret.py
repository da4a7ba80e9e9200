"""BGP session passwords (TCP MD5) as values that never render.

A ``Password`` holds the secret for the code that must send it (a device line, a
Kubernetes Secret) and shows nothing of it anywhere else: ``str``, ``repr`` and
JSON all give ``(set)``. Plans carry passwords before and after like any other
field, so that an applied change can be undone; only the words ``(set)``,
``(changed)`` and ``(removed)`` describe them.

Devices show a neighbour's password in clear or obfuscated (``password 8 ...``).
An obfuscated one cannot be compared, so it is taken to agree with the file
(rewriting it would reset the session every pass), unless peeringd knows the
password was rotated: its Kubernetes Secret, the record of what it last applied,
holds another value than the file.
"""

from __future__ import annotations

import hmac
import re
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["LIMIT", "SECRET_NAME", "SHOWN", "Password", "agrees", "refusal", "word"]

# Calico's BGPPeer password, and Linux's TCP MD5 key (TCP_MD5SIG_MAXKEYLEN), hold at most 80.
LIMIT = 80
# peeringd's Secret in calico-node's namespace: one key per ADC, named after it.
SECRET_NAME = "peeringd-bgp-passwords"  # noqa: S105  # a name, not a secret
# What a password is, written anywhere peeringd writes: never the secret itself.
SHOWN = "(set)"
# Printable ASCII but space, quotes, backslash (BIRD's string escape) and `?` (vtysh's help key).
_SAFE = re.compile(r"[!#-&(->@-\[\]-~]+")


class Password:
    """A secret that renders as ``(set)``; ``value`` is None when only its presence is known
    (read back from JSON). ``obfuscated``: the device's obfuscated form (``8 4a1f...``),
    sent back as the device printed it."""

    __slots__ = ("_value", "obfuscated")

    def __init__(self, value: str | None, *, obfuscated: bool = False) -> None:
        self._value = value
        self.obfuscated = obfuscated

    def reveal(self) -> str:
        """The secret, for the one line or object that must carry it."""
        if self._value is None:
            raise ValueError("this password was read back from JSON: its value is not known")
        return self._value

    @property
    def known(self) -> bool:
        return self._value is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Password) or self._value is None or other._value is None:
            return self is other
        same = hmac.compare_digest(self._value.encode(), other._value.encode())
        return same and self.obfuscated == other.obfuscated

    def __hash__(self) -> int:
        return hash(self.obfuscated)

    def __repr__(self) -> str:
        return f"Password({SHOWN})"

    def __str__(self) -> str:
        return SHOWN

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: GetCoreSchemaHandler) -> Any:
        # From JSON, a password is only ever "(set)": its value stays unknown.
        from_text = core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, Password) else Password(None)
        )
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([core_schema.str_schema(), from_text]),
            python_schema=core_schema.is_instance_schema(cls),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _: SHOWN, when_used="json"),
        )


def refusal(value: str) -> str | None:
    """Why ``value`` cannot be a BGP password on a device command line and in Calico, or None."""
    if not value:
        return "is empty"
    if len(value) > LIMIT:
        return f"is {len(value)} characters long; devices and Calico take at most {LIMIT}"
    if not _SAFE.fullmatch(value):
        return (
            "holds a character a device command line cannot carry (a space, quote, backslash, "
            "'?', a control or non-ASCII character)"
        )
    return None


def agrees(wanted: Password | None, shown: Password | None, *, rotated: bool) -> bool:
    """Whether the password a device shows is the one wanted, as far as can be told: an
    obfuscated or unknown one is taken to agree unless the password was ``rotated``."""
    if wanted is None or shown is None:
        return wanted is None and shown is None
    if shown.obfuscated or not shown.known or not wanted.known:
        return not rotated
    return wanted == shown


def word(
    before: Password | None, after: Password | None
) -> Literal["(set)", "(changed)", "(removed)"] | None:
    """How a password change reads in a plan, or None when it does not change."""
    if before is None and after is None:
        return None
    if before is None:
        return "(set)"
    if after is None:
        return "(removed)"
    return None if before == after else "(changed)"
