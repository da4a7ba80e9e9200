"""The soak script (tests/reliability/soak.py): its judgement, and a short run of its own.

The figures of a real soak (10,000 passes) are in README; here a few dozen passes prove that
the script drives the daemon, reads /metrics and /proc as it claims and reports what it read.
No figure is judged here.
"""

from __future__ import annotations

import pytest

from tests.reliability import soak


def sample(
    passes: int, *, rss: float = 70.0, fds: int = 13, threads: int = 9, failed: int = 0
) -> soak.Sample:
    return soak.Sample(
        seconds=passes / 10, passes=passes, failed=failed, rss_mib=rss, fds=fds, threads=threads
    )


def steady(*, rss: float = 70.0, fds: int = 13, threads: int = 9) -> list[soak.Sample]:
    """20 samples of 10 passes each, the last five with the figures given."""
    samples = [sample(10 * index) for index in range(1, 21)]
    return samples[:-5] + [sample(s.passes, rss=rss, fds=fds, threads=threads) for s in samples[-5:]]


class TestJudge:
    def test_a_flat_soak_misses_nothing(self) -> None:
        """Equal figures after the warm-up, every pass done: no target missed."""
        assert soak.judge(steady(), passes=200).missed == ()

    def test_rss_growth_over_the_limit_is_missed(self) -> None:
        """6 MiB more at the end than after the warm-up breaks the 5 MiB target."""
        verdict = soak.judge(steady(rss=76.0), passes=200)
        assert verdict.rss_growth == 6.0
        assert verdict.missed == ("RSS grew 6.0 MiB (at most 5)",)

    def test_growth_within_the_limit_is_not(self) -> None:
        """4 MiB more is within it."""
        assert soak.judge(steady(rss=74.0), passes=200).missed == ()

    def test_one_more_file_descriptor_or_thread_is_missed(self) -> None:
        """Descriptors and threads must stay flat."""
        assert soak.judge(steady(fds=14, threads=10), passes=200).missed == (
            "file descriptors grew from 13 to 14",
            "threads grew from 9 to 10",
        )

    def test_a_moment_of_a_pass_in_flight_is_not_growth(self) -> None:
        """The lowest of the last five samples counts: one sample with a pass's thread is not growth."""
        samples = steady()
        samples[-2] = sample(samples[-2].passes, threads=12, fds=15)
        assert soak.judge(samples, passes=200).missed == ()

    def test_failed_and_missing_passes_are_missed(self) -> None:
        """A failed pass, and fewer passes than asked, each miss a target."""
        samples = steady()
        samples[-1] = sample(190, failed=2)
        assert soak.judge(samples, passes=500).missed == ("190 passes of 500", "2 passes failed")


def test_read_sample_counts_passes_of_every_result() -> None:
    """Passes are the sum of peeringd_reconcile_total over its results; failed is one of them."""
    scraped = {
        'peeringd_reconcile_total{result="converged"}': 7.0,
        'peeringd_reconcile_total{result="drift"}': 0.0,
        'peeringd_reconcile_total{result="failed"}': 2.0,
        'peeringd_reconcile_created{result="failed"}': 1.7e9,
        "process_resident_memory_bytes": 75 * 1024 * 1024.0,
        "process_open_fds": 13.0,
    }
    assert sample(9, rss=75.0, fds=13, threads=9, failed=2) == soak.read_sample(scraped, 9, 0.9)


def test_a_short_soak_reports_what_it_read(capsys: pytest.CaptureFixture[str]) -> None:
    """A few dozen passes of a real daemon with churn: the report has every figure, the passes
    asked for, none failed, and sizes read from the live process."""
    code = soak.main(["--passes", "30", "--seed", "7"])
    out = capsys.readouterr().out
    report = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert int(report["passes"]) >= 30
    assert report["failed"] == "0"
    assert report["seed"] == "7"
    assert float(report["RSS start MiB"]) > 0
    assert int(report["fds start"]) > 0
    assert int(report["threads start"]) > 1  # the pass and the node watch run beside the main thread
    assert code == (1 if "TARGET MISSED" in out else 0)
