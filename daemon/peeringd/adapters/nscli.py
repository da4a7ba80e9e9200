"""NetScaler's own shell (nscli) as text: the feature table and the HA state.

Pure functions over recorded output, beside the driver that uses them. The
formats come from NetScaler's documentation; what they do not show is not
guessed: a reply without the row or field asked for raises OutputNotUnderstood.
"""

from __future__ import annotations

import re
from typing import Literal

from peeringd.adapters import replies
from peeringd.errors import OutputNotUnderstood

__all__ = ["HaRole", "parse_bgp_feature", "parse_ha_role"]

HaRole = Literal["primary", "secondary"]

_NODE = re.compile(r"^\s*(\d+)\)\s+Node ID:", re.MULTILINE)
_ROW_NUMBER = re.compile(r"\d+\)")
_MASTER_STATE = re.compile(r"^\s*Master State:[ \t]*(\S*)[ \t]*$", re.MULTILINE)
_INC_STATE = re.compile(r"^\s*INC State:[ \t]*(\S*)[ \t]*$", re.MULTILINE)


def parse_bgp_feature(text: str) -> bool:
    """Whether ``show ns feature`` lists BGP as ON: the row ``N)  BGP Routing  BGP  ON|OFF``."""
    command = "show ns feature"
    states = set()
    for line in replies.lines(text, command):
        words = line.split()
        if len(words) >= 4 and _ROW_NUMBER.fullmatch(words[0]) and words[-2] == "BGP":
            if words[-1] not in {"ON", "OFF"}:
                raise OutputNotUnderstood(
                    f"{command}: the BGP row says neither ON nor OFF: {replies.shown(line)}"
                )
            states.add(words[-1] == "ON")
    if len(states) != 1:
        raise OutputNotUnderstood(f"{command}: {'no BGP row' if not states else 'BGP rows that disagree'}")
    return states.pop()


def parse_ha_role(text: str) -> HaRole | None:
    """This ADC's role from ``show ha node`` (its own node is listed first), when it matters.

    A secondary in INC mode (independent network configuration) is configured on its own
    and is reported as None, like a standalone ADC. A reply without this node's Master
    State, or a secondary's INC State, raises OutputNotUnderstood: a secondary is never
    taken for a primary.
    """
    command = "show ha node"
    nodes = _NODE.split("\n".join(replies.lines(text, command)))
    if len(nodes) < 3:
        raise OutputNotUnderstood(f"{command}: lists no node")
    if nodes[1] != "1" or "Node ID" in nodes[0]:
        raise OutputNotUnderstood(f"{command}: does not list this node first, as node 1")
    own = nodes[2]
    state = _MASTER_STATE.search(own)
    inc = _INC_STATE.search(own)
    if state is None:
        raise OutputNotUnderstood(f"{command}: no Master State for this node")
    role = state[1].lower()
    if role not in {"primary", "secondary"}:
        raise OutputNotUnderstood(
            f"{command}: Master State {replies.shown(state[1])} is not Primary or Secondary"
        )
    if inc is not None and inc[1].upper() not in {"ENABLED", "DISABLED"}:
        raise OutputNotUnderstood(f"{command}: INC State {replies.shown(inc[1])} is not ENABLED or DISABLED")
    if inc is not None and inc[1].upper() == "ENABLED":
        return None
    if role == "secondary" and inc is None:
        raise OutputNotUnderstood(f"{command}: no INC State for this secondary")
    return "secondary" if role == "secondary" else "primary"
