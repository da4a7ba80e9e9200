"""What the fuzz scripts share: a seeded hypothesis run of one check over many cases, each
timed, and a summary of what was tried and what held.

A broken property or an unexpected exception stops the run (hypothesis shrinks it to a
small case and prints it) and the script prints the command that replays it. Time is not
a property hypothesis sees (a slow case is not reproducibly slow): every case is timed here,
one over the limit is timed twice more (on a shared machine a pause is not the parser's), the
slowest are kept, and one still over the limit fails the run after the summary.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st

__all__ = ["LIMIT_SECONDS", "Case", "Checked", "arguments", "run"]

LIMIT_SECONDS = 0.5
_KEPT_SLOWEST = 3

Input = TypeVar("Input")


@dataclass(frozen=True)
class Case(Generic[Input]):
    """One generated input and the mutations that made it (empty: as generated)."""

    data: Input
    mutations: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "+".join(self.mutations) or "unmutated"


@dataclass(frozen=True)
class Checked:
    """What the code under test did with one case, and how long it took (the check's own
    assertions are not timed)."""

    outcome: str
    seconds: float


@dataclass
class _Tally:
    tried: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    slowest: list[tuple[float, str, str]] = field(default_factory=list)
    over_limit: int = 0
    retimed: int = 0

    def add(self, case: Case[object], checked: Checked) -> None:
        for mutation in case.mutations or ("unmutated",):
            self.tried[mutation] += 1
        self.outcomes[checked.outcome] += 1
        if checked.seconds > LIMIT_SECONDS:
            self.over_limit += 1
        self.slowest.append((checked.seconds, case.kind, repr(case.data)[:120]))
        self.slowest = sorted(self.slowest, reverse=True)[:_KEPT_SLOWEST]


def arguments(script: str, description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m tests.reliability.{script}", description=description)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a new seed)")
    parser.add_argument("--cases", type=int, default=10_000, help="cases to generate (default 10000)")
    return parser.parse_args()


def run(
    script: str,
    cases: st.SearchStrategy[Case[Input]],
    check: Callable[[Case[Input]], Checked],
    properties: list[str],
    *,
    count: int,
    seed: int | None,
) -> int:
    """Check ``count`` generated cases; print what was tried and what held. Exit code 1 on a
    broken property, an exception, or a case slower than LIMIT_SECONDS."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    replay = f"python -m tests.reliability.{script} --seed {seed} --cases {count}"
    print(f"seed {seed}, {count} cases (replay: {replay})", flush=True)
    tally = _Tally()
    started = time.perf_counter()

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @seeded(seed)
    @given(cases)
    def every_case(case: Case[Input]) -> None:
        checked = check(case)
        if checked.seconds > LIMIT_SECONDS:
            tally.retimed += 1
            fastest = min(check(case).seconds for _ in range(2))
            checked = Checked(checked.outcome, min(checked.seconds, fastest))
        tally.add(case, checked)  # type: ignore[arg-type]

    try:
        every_case()
    except Exception:  # whatever broke is printed whole, with the seed
        traceback.print_exc()
        print(f"\nFAILED (seed {seed}): hypothesis printed the smallest failing case above; replay: {replay}")
        return 1
    elapsed = time.perf_counter() - started
    _summary(tally, properties, elapsed)
    if tally.over_limit:
        print(f"\nFAILED (seed {seed}): {tally.over_limit} cases over {LIMIT_SECONDS} s; replay: {replay}")
        return 1
    return 0


def _summary(tally: _Tally, properties: list[str], elapsed: float) -> None:
    total = sum(tally.outcomes.values())
    print(f"\n{total} cases in {elapsed:.1f} s\n\ntried (a case may carry several mutations):")
    for mutation, count in sorted(tally.tried.items(), key=lambda item: -item[1]):
        print(f"  {count:7}  {mutation}")
    print("\noutcomes:")
    for outcome, count in sorted(tally.outcomes.items(), key=lambda item: -item[1]):
        print(f"  {count:7}  {outcome}")
    print("\nheld for every case:")
    for held in properties:
        print(f"  - {held}")
    print("  - none raised anything else (tracebacks: 0)")
    if not tally.over_limit:
        print(f"  - none took over {LIMIT_SECONDS} s ({tally.retimed} timed again after a first slow try)")
    print("\nslowest:")
    for seconds, kind, data in tally.slowest:
        print(f"  {seconds * 1000:8.1f} ms  {kind}: {data}")
    sys.stdout.flush()
