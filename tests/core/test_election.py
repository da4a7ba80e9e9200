"""Leader election's decisions: client-go's semantics over a Lease record, without I/O or clocks."""

from __future__ import annotations

import datetime

import pytest

from peeringd.core import election

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=2)
TIMING = election.Timing.scaled(15)


def held(holder: str, *, duration: int = 15, transitions: int = 0) -> election.Record:
    return election.Record(
        holder=holder,
        lease_duration_seconds=duration,
        acquire_time=T0,
        renew_time=T0,
        transitions=transitions,
    )


class TestTiming:
    """How long a lease lasts, and when its holder renews and gives up."""

    def test_defaults_are_client_gos(self) -> None:
        """15 s gives client-go's 15 s lease, 10 s renew deadline and 2 s retry period."""
        assert (TIMING.lease_duration, TIMING.renew_deadline, TIMING.retry_period) == (15, 10.0, 2.0)

    def test_other_durations_keep_the_ratios(self) -> None:
        """A 6 s lease renews every 0.8 s and gives up after 4 s."""
        timing = election.Timing.scaled(6)
        assert (timing.renew_deadline, timing.retry_period) == pytest.approx((4.0, 0.8))

    def test_a_lease_too_short_is_refused(self) -> None:
        """Below 3 s the retries would crowd the API server."""
        with pytest.raises(ValueError, match="at least 3 seconds"):
            election.Timing.scaled(2)


class TestObserve:
    """What a candidate remembers of the records it reads."""

    def test_an_unchanged_record_keeps_when_it_was_first_seen(self) -> None:
        """Expiry counts from the first sight of a record, not from the latest read of it."""
        first = election.observe(None, held("a"), 100.0)
        assert election.observe(first, held("a"), 110.0).seen_at == 100.0

    def test_a_renewal_is_a_new_observation(self) -> None:
        """A changed renewTime restarts the count."""
        first = election.observe(None, held("a"), 100.0)
        renewed = held("a").model_copy(update={"renew_time": T1})
        assert election.observe(first, renewed, 110.0) == election.Observation(record=renewed, seen_at=110.0)


class TestMayTake:
    """When a candidate may write itself into the Lease."""

    @pytest.mark.parametrize(
        ("holder", "now", "expected"),
        [
            ("b", 114.9, False),  # b renewed 14.9 s ago, as seen from here
            ("b", 115.0, True),  # b's 15 s are over
            ("a", 100.0, True),  # a renews its own
            ("", 100.0, True),  # released
        ],
    )
    def test_who_may_take_when(self, holder: str, now: float, expected: bool) -> None:
        """Another holder's lease must have run out by the candidate's own clock."""
        observation = election.observe(None, held(holder), 100.0)
        assert election.may_take(observation, "a", now) == expected

    def test_the_record_s_own_duration_counts(self) -> None:
        """A released lease (1 s) runs out after 1 s even when held: the record decides, not our settings."""
        observation = election.observe(None, held("b", duration=1), 100.0)
        assert election.may_take(observation, "a", 101.0)


class TestTaken:
    """The record a candidate writes."""

    def test_a_new_lease_starts_with_no_transitions(self) -> None:
        """The creator holds it from now."""
        assert election.taken(None, "a", TIMING, T0) == held("a")

    def test_a_renewal_keeps_acquire_time_and_transitions(self) -> None:
        """Only renewTime moves."""
        renewed = election.taken(held("a", transitions=3), "a", TIMING, T1)
        assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (T0, T1, 3)

    def test_a_takeover_counts_a_transition(self) -> None:
        """A new holder, a new acquireTime, one more transition."""
        taken = election.taken(held("b", transitions=3), "a", TIMING, T1)
        assert (taken.holder, taken.acquire_time, taken.transitions) == ("a", T1, 4)

    def test_release_leaves_no_holder_and_a_one_second_lease(self) -> None:
        """As client-go's ReleaseOnCancel writes it; the transitions stay."""
        released = election.released(held("a", transitions=3), T1)
        assert released == election.Record(
            holder="", lease_duration_seconds=1, acquire_time=T1, renew_time=T1, transitions=3
        )


class TestFenceProblem:
    """Whether a daemon may start a write session, from what it knows locally."""

    def test_a_standby_may_not_write(self) -> None:
        """Not leading is reason enough."""
        assert election.fence_problem(False, None, 100.0, TIMING) == "this daemon is the standby"

    def test_a_fresh_renewal_may_write(self) -> None:
        """Renewed 9.9 s ago, within the 10 s renew deadline."""
        assert election.fence_problem(True, 100.0, 109.9, TIMING) is None

    def test_past_the_renew_deadline_nobody_writes(self) -> None:
        """At 10 s a standby may be 5 s from taking over: stop, as client-go's holders do."""
        assert election.fence_problem(True, 100.0, 110.0, TIMING) == (
            "the lease was last renewed 10.0s ago, past the renew deadline of 10s:"
            " another daemon may take it over"
        )


class TestSummary:
    """The leader line of `peeringd status`."""

    def test_a_holder_renewing(self) -> None:
        """Who, and how long ago by the reader's clock."""
        assert election.summary(held("a"), "kube-system/peeringd", T0 + datetime.timedelta(seconds=3)) == (
            "leader: a (lease kube-system/peeringd, renewed 3s ago)"
        )

    def test_a_holder_gone_silent(self) -> None:
        """Past its lease duration nobody leads, whatever the record says."""
        assert election.summary(held("a"), "kube-system/peeringd", T0 + datetime.timedelta(seconds=42)) == (
            "leader: none (lease kube-system/peeringd: a last renewed it 42s ago; it has expired)"
        )

    def test_a_released_lease(self) -> None:
        """No holder: free."""
        assert election.summary(election.released(held("a"), T1), "kube-system/peeringd", T1) == (
            "leader: none (lease kube-system/peeringd is free)"
        )
