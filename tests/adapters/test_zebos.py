"""The ZebOS-family renderer: the lines each change becomes, and what it refuses to send."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from peeringd.adapters import zebos
from peeringd.core import live, secret
from peeringd.core.plan import (
    Action,
    FeatureChange,
    MaxPathsChange,
    NeighbourChange,
    NeighbourSpec,
    RouteInstallChange,
    RouterChange,
)
from peeringd.errors import OutputNotUnderstood


def spec(remote_as: int = 64512, description: str | None = "peeringd:prod-1:node-a") -> NeighbourSpec:
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

    @pytest.mark.parametrize("dialect", [zebos.NETSCALER, zebos.FRR])
    def test_an_adoption_is_the_description_line_alone(self, dialect: zebos.Dialect) -> None:
        """No remote-as and none of the dialect's extras: nothing that could reset the session."""
        adoptions = tuple(
            NeighbourChange(
                action=Action.ADOPT,
                adc="adc-1",
                address=ipaddress.IPv4Address(address),
                before=spec(description=None),
                after=spec(description=f"peeringd:prod-1:{name}"),
            )
            for address, name in (("10.0.0.11", "node-a"), ("10.0.0.12", "node-b"))
        )

        assert lines(zebos.render(adoptions, dialect, 500)) == [
            "router bgp 500",
            " neighbor 10.0.0.11 description peeringd:prod-1:node-a",
            " neighbor 10.0.0.12 description peeringd:prod-1:node-b",
            "exit",
        ]

    def test_an_adoption_that_would_change_remote_as_is_refused(self) -> None:
        with pytest.raises(
            zebos.RenderError, match=r"adopting neighbor 10\.0\.0\.11 would change its remote-as"
        ):
            zebos.render((neighbour(Action.ADOPT, spec(1, description=None), spec()),), zebos.NETSCALER, 500)

    def test_a_release_removes_the_description_alone(self) -> None:
        release = neighbour(Action.RELEASE, spec(), spec(description=None))

        assert lines(zebos.render((release,), zebos.FRR, 65001)) == [
            "router bgp 65001",
            " no neighbor 10.0.0.11 description",
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


class TestPasswords:
    """Password lines: sent only when the password changes (each one resets the session)."""

    def with_password(
        self, value: str | None, description: str | None = "peeringd:prod-1:node-a"
    ) -> NeighbourSpec:
        password = secret.Password(value) if value is not None else None
        return dataclasses.replace(spec(description=description), password=password)

    @pytest.mark.parametrize("dialect", [zebos.NETSCALER, zebos.FRR])
    def test_a_new_neighbour_gets_its_password_with_it(self, dialect: zebos.Dialect) -> None:
        steps = zebos.render((neighbour(Action.CREATE, None, self.with_password("Pa55")),), dialect, 500)

        assert " neighbor 10.0.0.11 password Pa55" in lines(steps)

    def test_a_changed_password_is_one_line(self) -> None:
        change = neighbour(Action.UPDATE, self.with_password("Old"), self.with_password("New"))

        assert lines(zebos.render((change,), zebos.NETSCALER, 500)) == [
            "router bgp 500",
            " neighbor 10.0.0.11 password New",
            "exit",
        ]

    def test_a_description_change_does_not_resend_the_password(self) -> None:
        before = self.with_password("Same", description="peeringd:prod-1:x")
        change = neighbour(Action.UPDATE, before, self.with_password("Same"))

        assert not any("password" in line for line in lines(zebos.render((change,), zebos.NETSCALER, 500)))

    def test_a_removed_password_is_no_neighbor_password(self) -> None:
        change = neighbour(Action.UPDATE, self.with_password("Old"), self.with_password(None))

        assert lines(zebos.render((change,), zebos.NETSCALER, 500))[1] == " no neighbor 10.0.0.11 password"

    def test_an_obfuscated_password_goes_back_as_shown(self) -> None:
        """A revert restores what the device printed."""
        obfuscated = dataclasses.replace(spec(), password=secret.Password("8 0a1f", obfuscated=True))
        change = neighbour(Action.UPDATE, self.with_password("New"), obfuscated)

        assert (
            lines(zebos.render((change,), zebos.NETSCALER, 500))[1] == " neighbor 10.0.0.11 password 8 0a1f"
        )

    def test_an_unsafe_password_is_refused_without_showing_it(self) -> None:
        change = neighbour(Action.CREATE, None, self.with_password("two words"))

        with pytest.raises(zebos.RenderError) as refused:
            zebos.render((change,), zebos.NETSCALER, 500)
        assert "two words" not in str(refused.value)

    def test_redacted_hides_what_follows_password(self) -> None:
        assert zebos.redacted(" neighbor 10.0.0.11 password 8 0a1f") == " neighbor 10.0.0.11 password (set)"

    def test_verification_tolerates_an_obfuscated_password(self) -> None:
        change = neighbour(Action.CREATE, None, self.with_password("Pa55"))
        shown = live.Neighbour(
            address=ipaddress.IPv4Address("10.0.0.11"),
            remote_as=64512,
            description="peeringd:prod-1:node-a",
            password=secret.Password("8 0a1f", obfuscated=True),
        )
        running = zebos.RunningConfig(500, (shown,), live.MaxPaths(), route_install=False)

        assert zebos.unmet((change,), running) == ()
        assert zebos.unmet((change,), zebos.RunningConfig(500, (), live.MaxPaths(), False)) == (change,)


class TestControlCharacters:
    """A reply is scanned whole for control characters; one found is named with its line."""

    RUNNING = "router bgp 500\n neighbor 10.0.0.11 remote-as 64512\n!\nend\n"

    @pytest.mark.parametrize(("inserted", "code"), [("\x1b[K", "001B"), ("\r", "000D"), ("\x7f", "007F")])
    def test_one_inside_a_line_is_refused_naming_that_line(self, inserted: str, code: str) -> None:
        text = self.RUNNING.replace(" remote-as", f"{inserted} remote-as")

        with pytest.raises(OutputNotUnderstood, match=f"line 2 holds control character U\\+{code}"):
            zebos.parse_running_config(text)

    def test_crlf_line_ends_read_as_lf_ones(self) -> None:
        assert zebos.parse_running_config(self.RUNNING.replace("\n", "\r\n")) == zebos.parse_running_config(
            self.RUNNING
        )
