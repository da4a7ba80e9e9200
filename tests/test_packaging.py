"""The daemon's install carries none of the lab: its libraries are the ``lab`` extra's."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

from tests.support import REPO

LAB_LIBRARIES = ("aiohttp", "asyncssh", "jsonschema", "jsonpatch", "cel-python")


def requirement_names(extra: str | None) -> set[str]:
    """Names of the requirements that ``pip install peeringd[extra]`` adds (None: the plain install)."""
    names = set()
    for requirement in metadata.requires("peeringd") or []:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        marker_extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if name and (marker_extra[1] if marker_extra else None) == extra:
            names.add(name[0].lower())
    return names


def test_the_plain_install_requires_no_lab_library() -> None:
    assert requirement_names(None).isdisjoint(LAB_LIBRARIES)


def test_the_lab_extra_requires_every_lab_library() -> None:
    assert set(LAB_LIBRARIES) <= requirement_names("lab")


def test_the_daemon_and_every_command_but_the_lab_import_no_lab_module() -> None:
    """Loaded the way `peeringd run` loads them; the lab package itself stays out too."""
    probe = (
        "import sys\n"
        "from peeringd.runtime import cli, daemon, reconcile, sessions\n"
        "cli.main.list_commands(None)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp', 'asyncssh', 'jsonschema', 'jsonpatch', 'celpy'} or m.startswith('peeringd.lab.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]"


def test_without_the_lab_extra_the_lab_command_says_how_to_install_it() -> None:
    """An install without the extra: the lab's first library cannot be imported."""
    probe = (
        "import sys\n"
        "sys.modules['aiohttp'] = None\n"
        "from peeringd.runtime import cli\n"
        "cli.main(['lab', '--once'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the lab needs the lab extra (aiohttp is missing): pip install 'peeringd[lab]'"
    ]


HEAVY_FOR_A_HOOK = ("kubernetes", "netmiko", "paramiko", "apscheduler", "watchdog", "structlog")


def test_validate_and_help_import_no_client_library() -> None:
    """What keeps `peeringd validate` in a git hook and `--help` quick to start."""
    probe = (
        "import sys\n"
        "from peeringd.runtime import cli\n"
        "for argv in (['validate', '-f', 'state/peering.yaml'], ['--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY_FOR_A_HOOK!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
