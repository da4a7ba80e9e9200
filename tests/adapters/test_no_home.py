"""A process without a home directory (a systemd DynamicUser without libnss-systemd) works
as long as the paths are given, and is told which option to pass when they are not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO

# A user that no password database knows, as systemd's DynamicUser= is without libnss-systemd.
NOBODY_KNOWS = "54321"

# That user must reach the checkout (and the venv in it): a clone under `mktemp -d` (mode 0700) is
# out of its reach.
_REACHABLE = all(folder.stat().st_mode & 0o001 for folder in (REPO, *REPO.parents))

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("setpriv") is None,
        reason="needs root and setpriv (util-linux) to run as a user the system does not know",
    ),
    pytest.mark.skipif(
        not _REACHABLE, reason=f"other users cannot enter {REPO} or a folder above it (mode 0700)"
    ),
]


def run_homeless(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a Python with no $HOME, as a uid without a passwd entry."""
    command = ["setpriv", f"--reuid={NOBODY_KNOWS}", f"--regid={NOBODY_KNOWS}", "--clear-groups"]
    environment = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [*command, sys.executable, "-c", code],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_probe_really_has_no_home() -> None:
    result = run_homeless("import pathlib; pathlib.Path.home()")

    assert "Could not determine home directory" in result.stderr


def test_every_module_of_the_daemon_imports_without_a_home() -> None:
    result = run_homeless(
        "import peeringd.adapters.calico, peeringd.adapters.ssh, peeringd.adapters.netscaler, "
        "peeringd.adapters.frr, peeringd.runtime.cli, peeringd.runtime.daemon"
    )

    assert result.returncode == 0, result.stderr


def test_without_a_kubeconfig_the_error_names_the_option_to_pass() -> None:
    result = run_homeless(
        "from peeringd.adapters.calico import Calico\n"
        "from peeringd.errors import KubeconfigError\n"
        "try:\n"
        "    Calico.connect()\n"
        "except KubeconfigError as error:\n"
        "    print(error)\n"
    )

    assert result.stdout.strip() == (
        "no kubeconfig: pass --kubeconfig or set $KUBECONFIG "
        "(there is no home directory to find ~/.kube/config in)"
    )


def test_without_known_hosts_the_error_names_the_field_to_set() -> None:
    result = run_homeless(
        "from peeringd.adapters.netscaler import NetScaler\n"
        "from peeringd.core import desired\n"
        "from peeringd.errors import HostKeyMismatch\n"
        "adc = desired.ADC.model_validate({'name': 'adc-1', 'asNumber': 500, 'peerIP': '192.0.2.1',\n"
        "    'ssh': {'host': '127.0.0.1', 'username': 'nsroot', 'passwordFile': '/dev/null'}})\n"
        "try:\n"
        "    NetScaler(adc).observe()\n"
        "except HostKeyMismatch as error:\n"
        "    print(error)\n"
    )

    assert result.stdout.strip() == (
        "adc-1: no knownHostsFile is set and there is no home directory to find "
        "~/.ssh/known_hosts in: set ssh.knownHostsFile"
    )
