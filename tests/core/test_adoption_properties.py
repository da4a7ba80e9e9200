"""Properties of adoption and release over generated desired and live states."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from peeringd.core import desired, live, ownership
from peeringd.core.plan import Action, Change, NeighbourChange, PeerChange, PeerSpec, Plan, SaveChange, plan
from peeringd.core.release import release
from tests import support
from tests.core.test_plan_properties import PROPERTY, worlds

World = tuple[desired.PeeringState, live.LiveState]


@st.composite
def adopting_worlds(draw: st.DrawFn) -> World:
    """Generated worlds with adoption on, and hand-made peers that agree with the file or
    differ from it in one way each (node, nodeSelector, port, another tool's label)."""
    state, observed = draw(worlds())
    state = state.model_copy(update={"policy": state.policy.model_copy(update={"adopt": True})})
    if observed.calico is not None and state.adcs:
        adc = draw(st.sampled_from(state.adcs))
        agreeing = live.BGPPeer(name="bgppeer-global-3040", peer_ip=str(adc.peer_ip), as_number=adc.as_number)
        variant = draw(
            st.sampled_from(
                [
                    agreeing,
                    agreeing.model_copy(update={"node": "node-1"}),
                    agreeing.model_copy(update={"node_selector": "all()"}),
                    agreeing.model_copy(update={"peer_ip": f"{adc.peer_ip}:1179"}),
                    agreeing.model_copy(update={"labels": ((ownership.MANAGED_BY_LABEL, "Helm"),)}),
                ]
            )
        )
        if draw(st.booleans()):
            peers = (*observed.calico.peers, variant)
            observed = observed.model_copy(
                update={"calico": observed.calico.model_copy(update={"peers": peers})}
            )
    return state, observed


def adoptions(planned: Plan) -> list[Change]:
    return [change for change in planned.changes if change.action == Action.ADOPT]


def without_adoption(state: desired.PeeringState) -> desired.PeeringState:
    return state.model_copy(update={"policy": state.policy.model_copy(update={"adopt": False})})


@PROPERTY
@given(adopting_worlds())
def test_adoption_adds_marks_and_changes_nothing_else(world: World) -> None:
    """An adopted object is unowned, unclaimed and already as the file wants it; only its marks change."""
    state, observed = world
    cluster = state.cluster.name
    for change in adoptions(plan(state, observed)):
        if isinstance(change, PeerChange):
            assert observed.calico is not None
            (peer,) = [p for p in observed.calico.peers if p.name == change.name]
            adc = state.adc(change.for_adc)
            assert adc is not None
            assert not ownership.owns_peer(peer, cluster)
            assert ownership.claimant(peer) is None
            assert PeerSpec.of(peer) == change.before == change.after
            assert change.after == PeerSpec(peer_ip=str(adc.peer_ip), as_number=adc.as_number)
        else:
            assert isinstance(change, NeighbourChange)
            snapshot = observed.adc(change.adc)
            assert snapshot is not None
            found = snapshot.neighbour(change.address)
            assert found is not None
            assert change.before is not None
            assert change.after is not None
            assert (found.remote_as, found.description) == (change.before.remote_as, None)
            assert change.after.remote_as == found.remote_as
            assert (change.after.description or "").startswith(f"peeringd:{cluster}:")


@PROPERTY
@given(adopting_worlds())
def test_adoption_never_takes_an_object_someone_else_could_mean(world: World) -> None:
    """A peer is adopted only when it is the one hand-made peer at its ADC's address."""
    state, observed = world
    cluster = state.cluster.name
    for change in adoptions(plan(state, observed)):
        if isinstance(change, PeerChange):
            assert observed.calico is not None
            address = (change.after or PeerSpec(peer_ip="", as_number=None)).peer_ip
            at_address = [
                p
                for p in observed.calico.peers
                if p.peer_ip.partition(":")[0] == address and not ownership.owns_peer(p, cluster)
            ]
            assert [p.name for p in at_address] == [change.name]


@PROPERTY
@given(adopting_worlds())
def test_turning_adoption_on_only_turns_findings_into_adoptions(world: World) -> None:
    """Every change but adoptions (and the save they need) is the same with adoption off."""
    state, observed = world

    def others(planned: Plan) -> list[Change]:
        return [c for c in planned.changes if c.action != Action.ADOPT and not isinstance(c, SaveChange)]

    assert others(plan(state, observed)) == others(plan(without_adoption(state), observed))


@PROPERTY
@given(adopting_worlds())
def test_a_second_plan_after_applying_is_empty(world: World) -> None:
    """Applying a plan with adoptions converges: nothing left to adopt, create or change."""
    state, observed = world
    after = support.apply(plan(state, observed), observed)

    assert plan(state, after).changes == ()
    assert plan(without_adoption(state), after).changes == ()


@PROPERTY
@given(adopting_worlds())
def test_applying_only_the_adoptions_leaves_none_to_adopt(world: World) -> None:
    state, observed = world
    adopted = Plan(changes=tuple(adoptions(plan(state, observed))))

    assert adoptions(plan(state, support.apply(adopted, observed))) == []


@PROPERTY
@given(adopting_worlds())
def test_release_leaves_every_object_and_nothing_owned(world: World) -> None:
    """After a release nothing is peeringd's, nothing was removed, and no plan creates, changes or
    removes a BGPPeer or a neighbour (the released ones stand where the file wants them)."""
    state, observed = world
    assume(observed.calico is not None)
    converged = support.apply(plan(state, observed), observed)
    released = support.apply(release(state, converged), converged)
    cluster = state.cluster.name

    assert released.calico is not None
    assert converged.calico is not None
    assert sorted(p.name for p in released.calico.peers) == sorted(p.name for p in converged.calico.peers)
    assert not any(ownership.owns_peer(p, cluster) for p in released.calico.peers)
    for before, after in zip(converged.adcs, released.adcs, strict=True):
        assert [(n.address, n.remote_as) for n in after.neighbours] == [
            (n.address, n.remote_as) for n in before.neighbours
        ]
        assert not any(ownership.owns_neighbour(n, cluster) for n in after.neighbours)
    assert release(state, released).changes == ()
    for policy in (state, without_adoption(state)):
        touched = [
            c
            for c in plan(policy, released).changes
            if isinstance(c, PeerChange | NeighbourChange) and c.action != Action.ADOPT
        ]
        assert touched == []
