"""Device parsers on recorded outputs, napalm-style: tests/fixtures/<module>/<parser>/<case>/.

Each case is a device's output (``output.txt``) and what peeringd must read from it
(``expected.json``), or ``{"error": message}`` when it must refuse to read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from pydantic import TypeAdapter

from peeringd.adapters import nscli, zebos
from peeringd.core import live
from peeringd.errors import OutputNotUnderstood
from tests.reliability import device_output
from tests.reliability.runner import Case

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NEIGHBOUR = TypeAdapter(live.Neighbour)
SESSIONS = TypeAdapter(tuple[live.Session, ...])


def _running_config(text: str) -> dict[str, Any]:
    config = zebos.parse_running_config(text)
    return {
        "router_as": config.router_as,
        "neighbours": [_neighbour(n) for n in config.neighbours],
        "max_paths": config.max_paths.model_dump(),
        "route_install": config.route_install,
    }


def _neighbour(neighbour: live.Neighbour) -> dict[str, Any]:
    """A neighbour as read; of its password only whether it is there, and in which form."""
    found: dict[str, Any] = NEIGHBOUR.dump_python(neighbour, mode="json", exclude={"password"})
    if neighbour.password is not None:
        found["password"] = "obfuscated" if neighbour.password.obfuscated else "clear"
    return found


PARSERS: dict[str, Callable[[str], object]] = {
    "zebos/running_config": _running_config,
    "zebos/bgp_summary": lambda text: SESSIONS.dump_python(zebos.parse_bgp_summary(text), mode="json"),
    "zebos/bgp_summary_json": lambda text: SESSIONS.dump_python(
        zebos.parse_bgp_summary_json(text), mode="json"
    ),
    "nscli/bgp_feature": nscli.parse_bgp_feature,
    "nscli/ha_role": nscli.parse_ha_role,
}
CASES = sorted(
    f"{parser}/{case.name}" for parser in PARSERS for case in (FIXTURES / parser).iterdir() if case.is_dir()
)


def read(parser: str, text: str) -> object:
    """What ``parser`` reads from ``text``, or the message it refuses it with."""
    try:
        return PARSERS[parser](text)
    except OutputNotUnderstood as error:
        return {"error": str(error)}


@pytest.mark.parametrize("case", CASES)
def test_recorded_output(case: str) -> None:
    parser, _, _ = case.rpartition("/")
    folder = FIXTURES / case
    expected = json.loads((folder / "expected.json").read_text())

    assert expected == read(parser, (folder / "output.txt").read_bytes().decode())


def test_every_fixture_folder_has_a_parser() -> None:
    """A fixture nobody reads would be a test that cannot fail."""
    folders = {f"{module.name}/{parser.name}" for module in FIXTURES.iterdir() for parser in module.iterdir()}

    assert folders == set(PARSERS)


def test_a_feature_table_without_bgp_is_an_error() -> None:
    """Output without the row asked for is not read as OFF."""
    expected = {"error": "show ns feature: no BGP row"}

    assert expected == read("nscli/bgp_feature", " 1)  Web Logging  WL  ON\n Done\n")


@settings(max_examples=400, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@seed(20262)
@given(device_output.cases())
def test_garbled_replies_read_as_the_original_or_are_refused(case: Case[device_output.Reply]) -> None:
    """A seeded few hundred of the fuzz script's cases (tests/reliability/fuzz_device_output.py)."""
    device_output.check(case)
