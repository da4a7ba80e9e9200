"""A seeded handful of the fault campaign's schedules: one of each fault, with a desired change.

The seeds were picked so that each fault comes up once (the schedule's first draw); the
campaign script runs hundreds (``python -m tests.reliability.campaign``).
"""

from __future__ import annotations

import pytest

from tests.reliability import schedules

SEEDS = {
    0: "API server timeouts",
    1: "slow device",
    2: "SSH dropped after N lines",
    3: "ADC reboot losing unsaved config",
    5: "state file replaced mid-pass",
    7: "API server 409",
    9: "API server down for a while",
    13: "API server 5xx",
    14: "a line rejected",
    17: "watch expired (410)",
    19: "SIGTERM mid-pass",
    20: "SIGHUP storm",
}


def test_every_fault_is_in_the_handful() -> None:
    assert sorted(SEEDS.values()) == sorted(schedules.FAULTS + schedules.DAEMON_FAULTS)


@pytest.mark.parametrize("seed", sorted(SEEDS), ids=lambda seed: SEEDS[seed])
def test_the_schedule_converges_and_keeps_every_property(seed: int) -> None:
    outcome = schedules.run(seed, outage=1.0)

    assert (outcome.fault, outcome.broken) == (SEEDS[seed], [])
    assert outcome.passes_to_converge is not None
