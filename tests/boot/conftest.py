"""Fixtures of the boot tests: the cached Debian 12 root, a clean skip elsewhere, and their costs.

Each boot test module records what its steps cost (debootstrap or the cache, unpacking,
booting, installing, the checks) in ``costs`` and what it measured in ``figures``; both are
printed in pytest's summary, pass or fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.boot import rootfs

_REPORT = pytest.StashKey[dict[str, dict[str, float]]]()


def _report(config: pytest.Config) -> dict[str, dict[str, float]]:
    return config.stash.setdefault(_REPORT, {})


@pytest.fixture(scope="session")
def debian_root(request: pytest.FixtureRequest) -> rootfs.RootTarball:
    """The minimal Debian 12 root's tarball (built on first use, then cached); a skip naming
    what is missing where the boot tests cannot run."""
    missing = rootfs.missing_programs()
    if os.geteuid() != 0:
        missing.insert(0, "root (systemd-nspawn, nsenter, mounts)")
    mirror = rootfs.host_mirror()
    if mirror is None:
        missing.append("a Debian archive among apt's sources (/etc/apt/sources.list.d)")
    if missing:
        pytest.skip("the boot tests need " + "; ".join(missing))
    assert mirror is not None
    tarball = rootfs.cached_root(mirror, rootfs.cache_dir())
    step = "debootstrap and tarball" if tarball.build_seconds else "taken from the cache"
    _report(request.config)["debian 12 root costs"] = {step: tarball.build_seconds}
    return tarball


@pytest.fixture(scope="module")
def costs(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """Seconds each step of this module's scenario took, printed in the summary."""
    recorded: dict[str, float] = {}
    yield recorded
    _report(request.config)[f"{_module(request)} costs"] = recorded


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """Seconds this module measured (not spent), printed in the summary."""
    recorded: dict[str, float] = {}
    yield recorded
    _report(request.config)[f"{_module(request)} measured"] = recorded


def _module(request: pytest.FixtureRequest) -> str:
    return str(request.module.__name__).rpartition(".")[2]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line per boot test module and kind: each figure in seconds, and the costs' total."""
    report = _report(config)
    if not report:
        return
    terminalreporter.section("boot tests (seconds)")
    for title, recorded in report.items():
        line = ", ".join(f"{name} {value:.2f}" for name, value in recorded.items())
        if title.endswith(" costs"):
            line += f"; total {sum(recorded.values()):.1f}"
        terminalreporter.write_line(f"{title}: {line}")
