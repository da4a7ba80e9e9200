"""ZebOS-family parsers on recorded outputs, and the renderer's lines for each change."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from peeringd.adapters import zebos
from peeringd.core import live
from peeringd.core.plan import (
    Action,
    FeatureChange,
    MaxPathsChange,
    NeighbourChange,
    NeighbourSpec,
    RouteInstallChange,
    RouterChange,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zebos"
PARSERS: dict[str, Callable[[str], object]] = {
    "running_config": lambda text: _plain(zebos.parse_running_config(text)),
    "bgp_feature": zebos.parse_bgp_feature,
    "bgp_summary": lambda text: [s.model_dump(mode="json") for s in zebos.parse_bgp_summary(text)],
    "bgp_summary_json": lambda text: [s.model_dump(mode="json") for s in zebos.parse_bgp_summary_json(text)],
}


def _plain(config: zebos.RunningConfig) -> dict[str, Any]:
    return {
        "router_as": config.router_as,
        "neighbours": [n.model_dump(mode="json") for n in config.neighbours],
        "max_paths": config.max_paths.model_dump(),
        "route_install": config.route_install,
    }


CASES = sorted((parser.name, case.name) for parser in FIXTURES.iterdir() for case in parser.iterdir())


@pytest.mark.parametrize(("parser", "case"), CASES, ids=[f"{p}/{c}" for p, c in CASES])
def test_recorded_output(parser: str, case: str) -> None:
    """Each fixture: a device's output and what peeringd must read from it."""
    folder = FIXTURES / parser / case
    expected = json.loads((folder / "expected.json").read_text())

    assert expected == PARSERS[parser]((folder / "output.txt").read_text())


def test_feature_table_without_bgp_is_an_error() -> None:
    with pytest.raises(ValueError, match="no BGP row"):
        zebos.parse_bgp_feature(" 1)  Web Logging  WL  ON\n Done\n")


def spec(remote_as: int = 64512, description: str = "peeringd:prod-1:node-a") -> NeighbourSpec:
    return NeighbourSpec(remote_as=remote_as, description=description)


def neighbour(action: Action, before: NeighbourSpec | None, after: NeighbourSpec | None) -> NeighbourChange:
    return NeighbourChange(
        action=action, adc="adc-1", address=ipaddress.IPv4Address("10.0.0.11"), before=before, after=after
    )


def lines(steps: tuple[zebos.Step, ...]) -> list[str]:
    return [line for step in steps for line in step.lines]


class TestRender:
    def test_from_scratch_follows_the_seed_procedure(self) -> None:
        changes = (
            FeatureChange(action=Action.UPDATE, adc="adc-1", before=False, after=True),
            RouterChange(action=Action.CREATE, adc="adc-1", before=None, after=500),
            neighbour(Action.CREATE, None, spec()),
            MaxPathsChange(
                action=Action.UPDATE, adc="adc-1", before=live.MaxPaths(), after=live.MaxPaths(ebgp=8, ibgp=8)
            ),
            RouteInstallChange(action=Action.UPDATE, adc="adc-1", before=False, after=True),
        )

        assert lines(zebos.render(changes, zebos.NETSCALER, None)) == [
            "router bgp 500",
            " neighbor 10.0.0.11 remote-as 64512",
            " neighbor 10.0.0.11 description peeringd:prod-1:node-a",
            " max-paths ebgp 8",
            " max-paths ibgp 8",
            "exit",
            "ns route-install bgp",
        ]

    def test_one_node_joining_is_exactly_its_neighbour_lines(self) -> None:
        steps = zebos.render((neighbour(Action.CREATE, None, spec()),), zebos.NETSCALER, 500)

        assert [step.lines for step in steps] == [
            (
                "router bgp 500",
                " neighbor 10.0.0.11 remote-as 64512",
                " neighbor 10.0.0.11 description peeringd:prod-1:node-a",
            ),
            ("exit",),
        ]

    def test_a_changed_remote_as_removes_and_re_adds(self) -> None:
        steps = zebos.render((neighbour(Action.UPDATE, spec(1), spec()),), zebos.NETSCALER, 500)

        assert lines(steps)[1:4] == [
            " no neighbor 10.0.0.11",
            " neighbor 10.0.0.11 remote-as 64512",
            " neighbor 10.0.0.11 description peeringd:prod-1:node-a",
        ]

    def test_a_changed_description_is_one_line(self) -> None:
        steps = zebos.render(
            (neighbour(Action.UPDATE, spec(description="peeringd:prod-1:x"), spec()),), zebos.NETSCALER, 500
        )

        assert lines(steps) == [
            "router bgp 500",
            " neighbor 10.0.0.11 description peeringd:prod-1:node-a",
            "exit",
        ]

    def test_an_as_change_replaces_the_router(self) -> None:
        steps = zebos.render(
            (RouterChange(action=Action.UPDATE, adc="adc-1", before=400, after=500),), zebos.NETSCALER, 400
        )

        assert lines(steps) == ["no router bgp 400", "router bgp 500", "exit"]

    def test_frr_dialect(self) -> None:
        changes = (
            RouterChange(action=Action.CREATE, adc="r", before=None, after=65001),
            neighbour(Action.CREATE, None, spec()),
            MaxPathsChange(
                action=Action.UPDATE, adc="r", before=live.MaxPaths(), after=live.MaxPaths(ebgp=8)
            ),
        )

        assert lines(zebos.render(changes, zebos.FRR, None)) == [
            "router bgp 65001",
            " no bgp ebgp-requires-policy",
            " neighbor 10.0.0.11 remote-as 64512",
            " neighbor 10.0.0.11 description peeringd:prod-1:node-a",
            " neighbor 10.0.0.11 timers connect 5",
            " address-family ipv4 unicast",
            "  maximum-paths 8",
            " exit-address-family",
            "exit",
        ]

    @pytest.mark.parametrize(
        "description", ["peeringd:prod 1:a", "peeringd:x\nrouter bgp 1", 'peeringd:"x"', "p" * 81]
    )
    def test_unsafe_descriptions_are_refused_before_any_line(self, description: str) -> None:
        with pytest.raises(zebos.RenderError, match="not safe on a command line"):
            zebos.render(
                (neighbour(Action.CREATE, None, spec(description=description)),), zebos.NETSCALER, 500
            )

    def test_route_install_is_netscaler_only(self) -> None:
        change = RouteInstallChange(action=Action.UPDATE, adc="r", before=False, after=True)
        with pytest.raises(zebos.RenderError, match="frr has no ns route-install"):
            zebos.render((change,), zebos.FRR, 65001)
