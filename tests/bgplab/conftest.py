"""Fixtures for the BGP lab's smoke tests: a running lab, or a clean skip saying what is missing."""

from collections.abc import Iterator

import pytest

from . import lab


def skip_unless_lab_can_run() -> None:
    """Skip the calling test when this machine cannot run the lab, naming what is missing."""
    missing = lab.missing_prerequisites()
    if missing:
        pytest.skip("the BGP lab needs " + "; ".join(missing))


@pytest.fixture(scope="module")
def bgp_lab() -> Iterator[lab.BgpLab]:
    """A router and two nodes, shared by a module's tests and torn down after them, even on
    failure (the context manager runs when pytest finalizes the fixture)."""
    skip_unless_lab_can_run()
    with lab.BgpLab(node_count=2) as running:
        yield running
