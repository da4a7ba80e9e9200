"""The fault campaign: random fault schedules against the lab's API server and simulated ADCs.

Each schedule is one seed (``schedules.run``): a fault (SSH dropped after N configuration
lines, a line rejected, a slow device, an ADC rebooted with unsaved configuration, API server
5xx, 409, timeouts, down for a while, the node watch expired with 410, the state file replaced
mid-pass, SIGTERM mid-pass, a SIGHUP storm) with a desired change (a node joins or leaves, an
ADC is added or removed, maxPaths changes). A broken property prints the seed and the command
that replays that schedule alone; at the end, what was tried and what held.

Run from the repository root: ``.venv/bin/python -m tests.reliability.campaign``
(``--seed N`` replays a run, ``--schedules N``, default 200, ``--outage S``: how long the API
server stays down, default 3 s, the issue's 60 s scaled down; see schedules' docstring).
Exit 1 when a property broke.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import secrets
import sys
import time
from collections import Counter

import structlog

from tests.reliability import schedules

__all__ = ["main"]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.campaign", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a new seed)")
    parser.add_argument("--schedules", type=int, default=200, help="schedules to run (default 200)")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the API server is down")
    parser.add_argument("--only", type=int, default=None, help="run only this schedule's seed")
    return parser.parse_args()


def main() -> int:
    arguments = _arguments()
    # The passes' own log lines would bury the figures; broken properties say what happened.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    seed = secrets.randbelow(2**32) if arguments.seed is None else arguments.seed
    draw = random.Random(seed)  # noqa: S311 - replayable schedules, not secrets
    seeds = (
        [arguments.only]
        if arguments.only is not None
        else [draw.randrange(2**32) for _ in range(arguments.schedules)]
    )
    print(f"seed {seed}, {len(seeds)} schedules, outage {arguments.outage:g}s", flush=True)
    started = time.perf_counter()
    outcomes = []
    for index, schedule in enumerate(seeds, 1):
        outcome = schedules.run(schedule, outage=arguments.outage)
        outcomes.append(outcome)
        if outcome.broken:
            replay = f"python -m tests.reliability.campaign --only {schedule} --outage {arguments.outage:g}"
            print(f"BROKEN schedule {schedule} ({outcome.fault} + {outcome.change}, {outcome.detail}):")
            for broken in outcome.broken:
                print(f"  - {broken}")
            print(f"  replay: {replay}", flush=True)
        elif index % 20 == 0:
            print(f"  {index} schedules, {time.perf_counter() - started:.0f} s", flush=True)
    _summary(outcomes, time.perf_counter() - started)
    broken_seeds = [outcome.seed for outcome in outcomes if outcome.broken]
    if broken_seeds:
        print(f"\nFAILED (seed {seed}): {len(broken_seeds)} schedules broke a property: {broken_seeds}")
        return 1
    return 0


def _summary(outcomes: list[schedules.Outcome], elapsed: float) -> None:
    print(f"\n{len(outcomes)} schedules in {elapsed:.0f} s on {platform.node()} ({os.cpu_count()} CPUs)")
    print("\nfaults tried:")
    for fault, count in Counter(outcome.fault for outcome in outcomes).most_common():
        print(f"  {count:5}  {fault}")
    print("\ndesired changes tried:")
    for change, count in Counter(outcome.change for outcome in outcomes).most_common():
        print(f"  {count:5}  {change}")
    converged = Counter(outcome.passes_to_converge for outcome in outcomes if not outcome.broken)
    print("\npasses to converge after the fault cleared (schedules that held):")
    for passes, count in sorted(converged.items(), key=lambda item: item[0] or 0):
        print(f"  {count:5}  {passes}")
    print(f"\nsaves judged: {sum(outcome.saves for outcome in outcomes)}")
    unmarked = sum(1 for outcome in outcomes if outcome.unmarked)
    print(
        f"schedules that left a neighbour without peeringd's description (the fault fell between "
        f"its two lines; left as hand-made and reported): {unmarked}"
    )
    held = sum(1 for outcome in outcomes if not outcome.broken)
    print(f"\nheld in {held} of {len(outcomes)} schedules:")
    for held_property in schedules.PROPERTIES:
        print(f"  - {held_property}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
