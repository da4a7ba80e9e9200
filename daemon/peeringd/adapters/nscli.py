"""NetScaler's own shell (nscli) as text: the feature table and the HA state.

Pure functions over recorded output, beside the driver that uses them. The
formats come from NetScaler's documentation; where a field is missing the
parsers say they do not know rather than guess.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["HaRole", "parse_bgp_feature", "parse_ha_role"]

HaRole = Literal["primary", "secondary"]

_NODE = re.compile(r"^\s*\d+\)\s+Node ID:", re.MULTILINE)
_MASTER_STATE = re.compile(r"Master State:\s*(\w+)")
_INC_STATE = re.compile(r"INC State:\s*(\w+)")


def parse_bgp_feature(text: str) -> bool:
    """Whether ``show ns feature`` lists BGP as ON; raises ValueError when BGP is not listed."""
    for line in text.splitlines():
        words = line.split()
        if "BGP" in words and words[-1] in {"ON", "OFF"}:
            return words[-1] == "ON"
    raise ValueError("show ns feature lists no BGP row")


def parse_ha_role(text: str) -> HaRole | None:
    """This ADC's role from ``show ha node`` (its own node is listed first), when it matters.

    A secondary in INC mode (independent network configuration) is configured on its
    own and is reported as None, like a standalone ADC and like output not understood.
    """
    nodes = _NODE.split(text)
    own = nodes[1] if len(nodes) > 1 else ""
    state = _MASTER_STATE.search(own)
    inc = _INC_STATE.search(own)
    if state is None or (inc is not None and inc[1].upper() == "ENABLED"):
        return None
    role = state[1].lower()
    return "secondary" if role == "secondary" else "primary" if role == "primary" else None
