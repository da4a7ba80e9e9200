"""BGP session passwords in the plan: both sides, compared tolerantly, never shown."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Any

import pytest

from peeringd.core import desired, live, secret, status
from peeringd.core.plan import (
    Action,
    NeighbourChange,
    PeerChange,
    SaveChange,
    SecretChange,
    plan,
)
from peeringd.runtime import report
from tests import support

PASSWORD = "Known-Pa55word"
ROTATED = "Rotated-Pa55word"


def world(
    device_password: secret.Password | None = None,
    stored: str | None = None,
    readable: bool | None = True,
) -> live.LiveState:
    """One node peered with adc-1 by peeringd, the neighbour showing ``device_password``, and
    peeringd's Secret holding ``stored`` for adc-1 (absent when None)."""
    neighbour = dataclasses.replace(
        support.neighbour("10.0.0.11", node_name="node-1"), password=device_password
    )
    ref = live.SecretKeyRef(name=secret.SECRET_NAME, key="adc-1") if stored is not None else None
    peer = support.owned_peer("adc-1", "10.0.0.100", 500).model_copy(update={"password": ref})
    passwords = support.password_secret({"adc-1": stored} if stored else None, readable=readable)
    return live.LiveState(
        calico=support.calico(support.node("node-1", "10.0.0.11"), peers=(peer,), passwords=passwords),
        adcs=(support.device(router_as=500, neighbours=(neighbour,)),),
    )


def wanted(password: str | None = PASSWORD, **adc: Any) -> desired.PeeringState:
    state = support.state(support.adc(**{"saveConfig": False, "installRoutes": False, **adc}))
    return support.with_passwords(state, {"adc-1": password}) if password else state


class TestPassword:
    def test_renders_as_set_everywhere(self) -> None:
        """str, repr, and JSON show ``(set)``; the value comes out only through reveal()."""
        password = secret.Password(PASSWORD)
        change = NeighbourChange(
            action=Action.CREATE,
            adc="adc-1",
            address="10.0.0.11",
            before=None,
            after=support.neighbour_spec(password),
        )

        shown = [str(password), repr(password), change.model_dump_json(), repr(change), str(change)]
        assert [PASSWORD in text for text in shown] == [False] * 5
        assert password.reveal() == PASSWORD

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("", "is empty"),
            ("a" * 81, "is 81 characters long; devices and Calico take at most 80"),
            ("two words", "holds a character"),
            ('quo"te', "holds a character"),
            ("it's", "holds a character"),
            ("back\\slash", "holds a character"),
            ("help?", "holds a character"),
            ("tab\there", "holds a character"),
            ("caf\u00e9", "holds a character"),
        ],
    )
    def test_what_a_command_line_cannot_carry_is_refused(self, value: str, reason: str) -> None:
        refusal = secret.refusal(value)

        assert refusal is not None

        assert refusal.startswith(reason)

    def test_eighty_printable_characters_are_fine(self) -> None:
        assert secret.refusal("!#$%&()*+,-./09:;<=>@AZ[]^_`az{|}~" + "x" * 46) is None


class TestPlan:
    def test_a_first_password_is_set_on_both_sides_secret_before_peer(self) -> None:
        planned = plan(wanted(), world())

        neighbour, secret_change, peer = planned.changes
        assert isinstance(neighbour, NeighbourChange)
        assert neighbour.password == "(set)"
        assert isinstance(secret_change, SecretChange)
        assert secret_change.action == Action.CREATE
        assert secret_change.passwords == {"adc-1": "(set)"}
        assert isinstance(peer, PeerChange)
        assert peer.after is not None
        assert peer.after.password == live.SecretKeyRef(name=secret.SECRET_NAME, key="adc-1")

    def test_applied_it_converges(self) -> None:
        state = wanted()
        converged = support.apply(plan(state, world()), world())

        assert plan(state, converged).changes == ()

    def test_a_matching_clear_password_is_left_alone(self) -> None:
        assert plan(wanted(), world(secret.Password(PASSWORD), stored=PASSWORD)).changes == ()

    def test_an_obfuscated_password_is_trusted(self) -> None:
        """It cannot be compared; rewriting it would reset the session every pass."""
        shown = secret.Password("8 0a1f7c2e9b", obfuscated=True)

        assert plan(wanted(), world(shown, stored=PASSWORD)).changes == ()

    def test_a_rotation_rewrites_an_obfuscated_password_and_the_secret(self) -> None:
        """peeringd's Secret says what it applied last: another value in the file is a rotation."""
        shown = secret.Password("8 0a1f7c2e9b", obfuscated=True)
        planned = plan(wanted(ROTATED), world(shown, stored=PASSWORD))

        assert [(c.kind, c.action) for c in planned.changes] == [
            ("neighbour", Action.UPDATE),
            ("secret", Action.UPDATE),
        ]
        neighbour, secret_change = planned.changes
        assert isinstance(neighbour, NeighbourChange)
        assert neighbour.password == "(changed)"
        assert isinstance(secret_change, SecretChange)
        assert secret_change.passwords == {"adc-1": "(changed)"}
        assert neighbour.before is not None
        assert neighbour.before.password == shown  # for a revert

    def test_a_different_clear_password_is_changed(self) -> None:
        planned = plan(wanted(), world(secret.Password("Other-one"), stored=PASSWORD))

        assert [c.kind for c in planned.changes] == ["neighbour"]

    def test_a_password_taken_out_of_the_file_is_removed_secret_last(self) -> None:
        planned = plan(wanted(None), world(secret.Password(PASSWORD), stored=PASSWORD))

        assert [(c.kind, c.action) for c in planned.changes] == [
            ("neighbour", Action.UPDATE),
            ("bgppeer", Action.UPDATE),
            ("secret", Action.DELETE),
        ]
        neighbour = planned.changes[0]
        assert isinstance(neighbour, NeighbourChange)
        assert neighbour.password == "(removed)"

    def test_calico_node_unable_to_read_the_secret_is_an_error(self) -> None:
        planned = plan(wanted(), world(readable=False))

        assert [f.message for f in planned.errors] == [
            "calico-node (system:serviceaccount:calico-system:calico-node) cannot read Secret "
            "calico-system/peeringd-bgp-passwords: its sessions would stay down with a password; "
            "apply the Role and RoleBinding that `peeringd rbac` prints"
        ]

    def test_someone_elses_secret_of_that_name_is_an_error(self) -> None:
        observed = world()
        assert observed.calico is not None
        assert observed.calico.passwords is not None
        foreign = observed.calico.passwords.model_copy(update={"exists": True, "labels": ()})
        observed = observed.model_copy(
            update={"calico": observed.calico.model_copy(update={"passwords": foreign})}
        )

        planned = plan(wanted(), observed)

        assert [f.message.split(":")[0] for f in planned.errors] == [
            "Secret calico-system/peeringd-bgp-passwords exists and is not peeringd's for cluster prod-1"
        ]
        assert not any(isinstance(c, SecretChange) for c in planned.changes)

    def test_obfuscated_refuse_makes_an_error(self) -> None:
        state = wanted(bgpPassword={"file": "/etc/peeringd/adc-1.bgp", "obfuscated": "refuse"})
        shown = secret.Password("8 0a1f7c2e9b", obfuscated=True)

        planned = plan(state, world(shown, stored=PASSWORD))

        assert [f.target for f in planned.errors] == ["adc-1"]

    def test_text_and_json_say_set_and_never_the_password(self) -> None:
        state = wanted(saveConfig=True)
        planned = plan(state, world())

        text = report.plan_text(planned, (), "crd.projectcalico.org/v1")
        dumped = json.dumps(planned.model_dump(mode="json"))
        assert PASSWORD not in text
        assert PASSWORD not in dumped
        assert "  ~ neighbor 10.0.0.11: password (set)" in text
        assert "  ~ BGPPeer adc-1: password none -> Secret peeringd-bgp-passwords key adc-1" in text
        assert "  + Secret calico-system/peeringd-bgp-passwords: BGP passwords adc-1 (set)" in text
        assert '"password": "(set)"' in dumped
        assert isinstance(planned.changes[-1], PeerChange)
        assert any(isinstance(c, SaveChange) for c in planned.changes)


class TestStatus:
    def test_a_session_down_with_a_password_says_to_check_it(self) -> None:
        """A wrong password drops TCP segments silently: the ends can only say Active or Connect."""
        observed = world(secret.Password(PASSWORD), stored=PASSWORD)
        assert observed.calico is not None
        down = support.device(
            router_as=500,
            sessions=(live.Session(address=ipaddress.IPv4Address("10.0.0.11"), state="Active"),),
        )
        calico_node = live.NodeStatus(
            node="node-1",
            reported=True,
            peers=(live.PeerStatus(peer_ip="10.0.0.100", type="GlobalPeer", state="Connect"),),
        )

        with_password = status.rows(wanted(), observed.calico, (down,), (calico_node,))
        without = status.rows(wanted(None), observed.calico, (down,), (calico_node,))

        assert [row.verdict_text for row in with_password] == [f"down ({status.PASSWORD_HINT})"]
        assert [row.verdict_text for row in without] == ["down"]


class TestHolding:
    """The Secret keeps the password of an ADC whose configuration failed in the pass."""

    def change(self, before: dict[str, str] | None, after: dict[str, str]) -> SecretChange:
        def data(values: dict[str, str]) -> tuple[tuple[str, secret.Password], ...]:
            return tuple(sorted((key, secret.Password(value)) for key, value in values.items()))

        return SecretChange(
            action=Action.UPDATE if before is not None else Action.CREATE,
            namespace="calico-system",
            name=secret.SECRET_NAME,
            before=data(before) if before is not None else None,
            after=data(after),
        )

    def test_a_failed_adcs_key_keeps_its_old_value(self) -> None:
        held = self.change({"adc-1": "Old", "adc-2": "Old"}, {"adc-1": "New", "adc-2": "New"}).holding(
            {"adc-1"}
        )

        assert held is not None
        assert held.passwords == {"adc-2": "(changed)"}

    def test_nothing_left_is_none(self) -> None:
        assert self.change({"adc-1": "Old"}, {"adc-1": "New"}).holding({"adc-1"}) is None
        assert self.change(None, {"adc-1": "New"}).holding({"adc-1"}) is None


def test_a_snapshot_read_back_from_json_plans_nothing_when_converged() -> None:
    """`snapshot` shows passwords as (set): `plan --live` takes them to agree, never to differ."""
    observed = world(secret.Password(PASSWORD), stored=PASSWORD)
    read_back = live.LiveState.model_validate_json(observed.model_dump_json())

    assert PASSWORD not in observed.model_dump_json()
    assert plan(wanted(), read_back).changes == ()
