"""core.revert: the inverse of a pass, planned from live with the same ownership rules."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from peeringd.core import desired, live, ownership, revert, secret, status
from peeringd.core.plan import (
    CALICO,
    Action,
    Change,
    ConfigurationChange,
    ConfigurationSpec,
    FeatureChange,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    RouterChange,
    SaveChange,
    SecretChange,
    plan,
)
from tests import support
from tests.core import test_passwords
from tests.core.test_plan_properties import PROPERTY, worlds
from tests.support import calico, device, neighbour, node, owned_peer, state

CLUSTER = support.CLUSTER
NODES = (node("node-a", "10.0.0.11"), node("node-b", "10.0.0.12"))


def converged(router_as: int = 500, peer_as: int = 500) -> live.LiveState:
    return live.LiveState(
        calico=calico(*NODES, peers=(owned_peer("adc-1", "10.0.0.100", peer_as),)),
        adcs=(
            device(
                router_as=router_as,
                route_install=True,
                neighbours=(
                    neighbour("10.0.0.11", node_name="node-a"),
                    neighbour("10.0.0.12", node_name="node-b"),
                ),
            ),
        ),
    )


def peer_as_change(before: int, after: int) -> PeerChange:
    return PeerChange(
        action=Action.UPDATE,
        name="adc-1",
        before=PeerSpec(peer_ip="10.0.0.100", as_number=before),
        after=PeerSpec(peer_ip="10.0.0.100", as_number=after),
        resource_version="1",
    )


class TestInverse:
    def test_an_update_swaps_before_and_after(self) -> None:
        """The inverse writes the old value back, reading the resourceVersion afresh."""
        assert revert.inverse(peer_as_change(500, 501)) == peer_as_change(501, 500).model_copy(
            update={"resource_version": None}
        )

    def test_create_and_delete_are_each_others_inverse(self) -> None:
        spec = NeighbourSpec(remote_as=64512, description="d")
        address = ipaddress.IPv4Address("10.0.0.11")
        created = NeighbourChange(action=Action.CREATE, adc="adc-1", address=address, before=None, after=spec)
        deleted = NeighbourChange(action=Action.DELETE, adc="adc-1", address=address, before=spec, after=None)

        assert (revert.inverse(created), revert.inverse(deleted)) == (deleted, created)

    def test_adopt_is_undone_by_release(self) -> None:
        adopted = peer_as_change(500, 500).model_copy(update={"action": Action.ADOPT})

        undo = revert.inverse(adopted)

        assert undo is not None
        assert undo.action == Action.RELEASE

    def test_passwords_are_swapped_like_any_field(self) -> None:
        """A password rotation comes back whole: the old secret, not a word for it."""
        address = ipaddress.IPv4Address("10.0.0.11")
        old = NeighbourSpec(remote_as=1, description=None, password=secret.Password("old-one"))
        new = NeighbourSpec(remote_as=1, description=None, password=secret.Password("new-one"))
        change = NeighbourChange(action=Action.UPDATE, adc="adc-1", address=address, before=old, after=new)

        undo = revert.inverse(change)

        assert isinstance(undo, NeighbourChange)
        assert undo.after is not None
        assert undo.after.password is not None
        assert undo.after.password.reveal() == "old-one"

    def test_a_secret_change_is_inverted_without_knowing_its_fields(self) -> None:
        created = SecretChange(
            action=Action.CREATE,
            namespace="calico-system",
            name=secret.SECRET_NAME,
            before=None,
            after=(("adc-1", secret.Password("s3cret")),),
        )

        undo = revert.inverse(created)

        assert isinstance(undo, SecretChange)
        assert (undo.action, undo.before, undo.after) == (Action.DELETE, created.after, None)

    def test_what_cannot_be_said_or_is_kept_has_no_inverse(self) -> None:
        """A created router stanza (no `router bgp` to go back to), the feature, a save."""
        changes: list[Change] = [
            RouterChange(action=Action.CREATE, adc="adc-1", before=None, after=500),
            FeatureChange(action=Action.UPDATE, adc="adc-1", before=False, after=True),
            SaveChange(action=Action.UPDATE, adc="adc-1"),
        ]

        assert [revert.inverse(change) for change in changes] == [None, None, None]

    def test_a_created_configuration_goes_back_to_calicos_defaults(self) -> None:
        created = ConfigurationChange(
            action=Action.CREATE,
            before=None,
            after=ConfigurationSpec(as_number=64513, node_to_node_mesh=False),
        )

        assert revert.inverse(created) == ConfigurationChange(
            action=Action.UPDATE,
            before=ConfigurationSpec(as_number=64513, node_to_node_mesh=False),
            after=ConfigurationSpec(as_number=64512, node_to_node_mesh=True),
        )


class TestPlan:
    def test_a_pass_is_undone_where_live_shows_what_it_wrote(self) -> None:
        before = converged()
        wanted = state(support.adc(maxPaths={"ebgp": 4}))
        after = support.apply(plan(wanted, before), before)

        undo = revert.plan(plan(wanted, before).changes, before, after, CLUSTER)

        assert [(c.kind, c.action) for c in undo.changes] == [
            ("max-paths", Action.UPDATE),
            ("save", Action.UPDATE),
        ]
        assert support.apply(undo, after).adcs[0].max_paths == before.adcs[0].max_paths

    def test_an_object_someone_changed_since_is_left_alone_and_named(self) -> None:
        before = converged(peer_as=500)
        applied = (peer_as_change(500, 501),)
        meanwhile = live.LiveState(
            calico=calico(*NODES, peers=(owned_peer("adc-1", "10.0.0.100", 502),)), adcs=before.adcs
        )

        undo = revert.plan(applied, before, meanwhile, CLUSTER)

        assert undo.changes == ()
        assert [f.message for f in undo.findings] == [
            "update of bgppeer adc-1: was changed by someone else since the pass; left as it is"
        ]

    def test_a_peer_someone_took_over_is_not_deleted(self) -> None:
        """Ownership counts: a created peer whose marks someone removed is not ours to delete."""
        created = PeerChange(
            action=Action.CREATE,
            name="adc-1",
            before=None,
            after=PeerSpec(peer_ip="10.0.0.100", as_number=500),
        )
        taken = live.BGPPeer(name="adc-1", peer_ip="10.0.0.100", as_number=500)
        observed = live.LiveState(calico=calico(*NODES, peers=(taken,)), adcs=())

        assert revert.plan((created,), live.LiveState(calico=calico(*NODES)), observed, CLUSTER).changes == ()

    def test_a_replaced_router_gets_its_old_neighbours_back_hand_made_ones_too(self) -> None:
        hand_made = live.Neighbour(address=ipaddress.IPv4Address("10.0.0.99"), remote_as=65000)
        before = converged(router_as=500)
        before = before.model_copy(
            update={
                "adcs": (
                    before.adcs[0].model_copy(update={"neighbours": (*before.adcs[0].neighbours, hand_made)}),
                )
            }
        )
        wanted = state(support.adc(as_number=501), policy={"allowASChange": True})
        applied = plan(wanted, before).changes
        after = support.apply(plan(wanted, before), before)

        undo = revert.plan(applied, before, after, CLUSTER)
        restored = support.apply(undo, after)

        assert restored.adcs[0].router_as == 500
        assert set(restored.adcs[0].neighbours) == set(before.adcs[0].neighbours)
        assert revert.unreverted(undo, restored, CLUSTER) == ()

    def test_calico_comes_first_then_each_adc_then_its_save(self) -> None:
        before = live.LiveState(calico=calico(*NODES), adcs=(device(router_as=500, route_install=True),))
        wanted = state(support.adc(saveConfig=True))
        applied = plan(wanted, before).changes

        undo = revert.plan(applied, before, support.apply(plan(wanted, before), before), CLUSTER)

        assert next(c.target for c in undo.changes) == CALICO
        assert isinstance(undo.changes[-1], SaveChange)
        assert [c.action for c in undo.changes if isinstance(c, NeighbourChange)] == [Action.DELETE] * 2

    def test_an_unobserved_target_is_not_planned(self) -> None:
        before = converged(peer_as=500)

        undo = revert.plan((peer_as_change(500, 501),), before, live.LiveState(calico=None), CLUSTER)

        assert undo == revert.plan((), before, before, CLUSTER)


class TestUnconfirmed:
    def row(self, node_name: str, verdict: status.Verdict) -> status.Row:
        address = {"node-a": "10.0.0.11", "node-b": "10.0.0.12"}[node_name]
        return status.Row(
            adc="adc-1",
            node=node_name,
            address=ipaddress.IPv4Address(address),
            adc_state=None,
            adc_up_down=None,
            adc_prefixes=None,
            calico_state=None,
            calico_since=None,
            verdict=verdict,
        )

    def test_sessions_up_before_and_new_ones_must_be_up(self) -> None:
        rows = (self.row("node-a", "down"), self.row("node-b", "down"))

        assert revert.unconfirmed(rows, {("adc-1", "10.0.0.11", "node-a"): True}) == rows

    def test_a_session_down_before_the_pass_need_not_come_up(self) -> None:
        rows = (self.row("node-a", "down"), self.row("node-b", "established"))

        assert revert.unconfirmed(rows, {("adc-1", "10.0.0.11", "node-a"): False}) == ()


def _essence(observed: live.LiveState, cluster: str) -> object:
    """What a revert restores: specs and ownership of peers, Calico's effective settings, each
    device's router, neighbours and settings (not the feature, saves or resourceVersions)."""
    calico_part = None
    if observed.calico is not None:
        configuration = observed.calico.configuration or live.BGPConfiguration()
        calico_part = (
            sorted((p.name, PeerSpec.of(p), ownership.owns_peer(p, cluster)) for p in observed.calico.peers),
            configuration.as_number or 64512,
            configuration.node_to_node_mesh is not False,
        )
    devices = [
        (d.name, d.router_as, sorted(map(str, d.neighbours)), d.max_paths, d.route_install)
        for d in observed.adcs
    ]
    return calico_part, devices


@PROPERTY
@given(worlds())
def test_a_reverted_pass_leaves_live_as_it_was(world: tuple[desired.PeeringState, live.LiveState]) -> None:
    """apply(revert(apply(plan))) restores what the pass changed, but a created router stanza."""
    wanted, before = world
    planned = plan(wanted, before)
    after = support.apply(planned, before)
    cluster = wanted.cluster.name

    undo = revert.plan(planned.changes, before, after, cluster)
    restored = support.apply(undo, after)

    created_routers = {c.adc for c in planned.changes if isinstance(c, RouterChange) and c.before is None}
    if not created_routers:
        assert _essence(restored, cluster) == _essence(before, cluster)
    assert revert.unreverted(undo, restored, cluster) == ()
    assert revert.plan(planned.changes, before, restored, cluster).changes == ()


@PROPERTY
@given(worlds(), st.data())
def test_nothing_someone_changed_after_the_pass_is_reverted(
    world: tuple[desired.PeeringState, live.LiveState], data: st.DataObject
) -> None:
    """A peer changed by someone else after the pass appears in no change of the revert."""
    wanted, before = world
    planned = plan(wanted, before)
    after = support.apply(planned, before)
    touched = [c for c in planned.changes if isinstance(c, PeerChange) and c.after is not None]
    if after.calico is None or not touched:
        return
    name = data.draw(st.sampled_from([c.name for c in touched]))
    peers = tuple(
        p.model_copy(update={"as_number": 4_000_000}) if p.name == name else p for p in after.calico.peers
    )
    meanwhile = after.model_copy(update={"calico": after.calico.model_copy(update={"peers": peers})})

    undo = revert.plan(planned.changes, before, meanwhile, wanted.cluster.name)

    assert name not in {c.name for c in undo.changes if isinstance(c, PeerChange)}


class TestPasswords:
    """Passwords revert like any field: the Secret and both ends go back to the old one."""

    def test_a_rotation_is_undone_on_the_secret_the_peer_and_the_neighbour(self) -> None:
        before = test_passwords.world(
            secret.Password(test_passwords.PASSWORD), stored=test_passwords.PASSWORD
        )
        rotated = test_passwords.wanted(test_passwords.ROTATED)
        planned = plan(rotated, before)
        after = support.apply(planned, before)

        undo = revert.plan(planned.changes, before, after, CLUSTER)
        restored = support.apply(undo, after)

        assert {c.kind for c in undo.changes} == {c.kind for c in planned.changes}
        assert restored.calico is not None
        assert restored.calico.passwords is not None
        assert dict(restored.calico.passwords.data)["adc-1"].reveal() == test_passwords.PASSWORD
        shown = restored.adcs[0].neighbours[0].password
        assert shown is not None
        assert shown.reveal() == test_passwords.PASSWORD
        assert revert.unreverted(undo, restored, CLUSTER) == ()

    def test_a_password_the_device_shows_obfuscated_is_named_not_guessed(self) -> None:
        before = test_passwords.world(
            secret.Password(test_passwords.PASSWORD), stored=test_passwords.PASSWORD
        )
        planned = plan(test_passwords.wanted(test_passwords.ROTATED), before)
        after = support.apply(planned, before)
        obfuscated = secret.Password("8 4a1f", obfuscated=True)
        neighbours = tuple(dataclasses.replace(n, password=obfuscated) for n in after.adcs[0].neighbours)
        shown = after.model_copy(
            update={"adcs": (after.adcs[0].model_copy(update={"neighbours": neighbours}),)}
        )

        undo = revert.plan(planned.changes, before, shown, CLUSTER)

        assert not [c for c in undo.changes if isinstance(c, NeighbourChange)]
        assert any("obfuscated" in finding.message for finding in undo.findings)
