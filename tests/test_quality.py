"""The code stays as clean as the guide asks: layers, lint and types are part of the test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO

BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )


def test_layers_hold() -> None:
    """runtime > adapters > core, and the core imports no I/O or network library."""
    result = run("lint-imports")

    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "--no-cache", ".")

    assert result.returncode == 0, result.stdout[-3000:]


def test_mypy_strict_is_clean() -> None:
    result = run("mypy")

    assert result.returncode == 0, result.stdout[-3000:]
