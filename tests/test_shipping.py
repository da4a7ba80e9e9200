"""What ships beside the package: the systemd unit and the container image.

Checked without a service manager or a Docker engine: systemd-analyze scores and
verifies the unit offline, peeringd's own command line parses both command lines,
and the Dockerfile's health check, port and user agree with its entry point.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest

from peeringd.runtime import cli
from tests.shipped import (
    CREDENTIALS,
    DOCKERFILE,
    UNIT,
    entrypoint,
    exec_start,
    healthcheck,
    instruction,
    metrics_port,
    unit_values,
)
from tests.support import REPO

# The unit's exposure as systemd 252 (Debian 12) scores it, "OK"; lower is better.
MAX_EXPOSURE = 1.1
# What it leaves exposed, each for a reason: the daemon connects out and listens (network, address families);
# the API server's and ADCs' addresses are the site's (IPAddressDeny=); ProtectClock=
# itself grants reading the RTC (DeviceAllow=); the daemon runs from the host's root.
ACCEPTED_EXPOSURES = {
    "PrivateNetwork=",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX",
    "IPAddressDeny=",
    "DeviceAllow=",
    "RootDirectory=/RootImage=",
}
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd)"
)


def healthcheck_url() -> str:
    urls = re.findall(r"http://[^'\"\s]+", " ".join(healthcheck()))
    assert len(urls) == 1, healthcheck()
    return str(urls[0])


COMMAND_LINES: dict[str, Callable[[], list[str]]] = {"systemd": exec_start, "docker": entrypoint}


def security_report() -> str:
    assert SYSTEMD_ANALYZE
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
        check=False,
    )
    assert result.stderr == "", result.stderr
    return result.stdout


@needs_systemd_analyze
def test_unit_exposure_is_at_most_the_level_reached() -> None:
    """`systemd-analyze security` scores the unit OK or better, and no worse than it did."""
    report = security_report()
    score = re.search(r"Overall exposure level for peeringd\.service: (\d+\.\d+)", report)

    assert score, report
    assert float(score[1]) <= MAX_EXPOSURE, report


@needs_systemd_analyze
def test_unit_exposes_only_what_the_daemon_needs() -> None:
    """The checks the unit fails are the expected few; the score alone rounds small losses away."""
    report = security_report()
    # A failed check is a row that ends with its share of the exposure.
    failed = set(re.findall(r"^\S+ (\S+) .* \d+\.\d+$", report, re.MULTILINE))

    assert failed == ACCEPTED_EXPOSURES, report


@needs_systemd_analyze
@pytest.mark.skipif(not SYSTEM_UNITS.is_dir(), reason=f"no {SYSTEM_UNITS} to verify against")
def test_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts every line, in a root with stand-ins for the programs."""
    assert SYSTEMD_ANALYZE
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system")
    for command in unit_values("ExecStart") + unit_values("ExecReload"):
        program = root / Path(shlex.split(command)[0]).relative_to("/")
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", "--man=no", "--generators=no", "peeringd.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")


def parse_run(argv: list[str]) -> click.Context:
    """``peeringd run`` ARGV parsed by peeringd's own command line: every value converted and
    checked (the HOST:PORT too), nothing run."""
    run = cli.main.commands.get("run")
    if run is None:
        pytest.skip("peeringd run not yet available")
    return run.make_context("run", argv[2:])


@pytest.mark.parametrize("where", COMMAND_LINES)
def test_command_line_parses_with_peeringd_run(where: str) -> None:
    """The unit's ExecStart and the image's ENTRYPOINT are options `peeringd run` accepts."""
    argv = COMMAND_LINES[where]()
    context = parse_run(argv)

    assert (Path(argv[0]).name, argv[1]) == ("peeringd", "run")
    assert context.params["state_file"] == Path("/etc/peeringd/peering.yaml")
    assert context.params["metrics_address"][1] == metrics_port(argv)


def test_unit_lock_is_in_the_runtime_directory_systemd_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """ExecStart leaves --lock-file to the daemon's default, $RUNTIME_DIRECTORY/peeringd.lock."""
    (directory,) = unit_values("RuntimeDirectory")
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"/run/{directory}")
    context = parse_run(exec_start())

    assert context.params["lock_file"] == Path("/run", directory, "peeringd.lock")


def test_unit_takes_its_kubeconfig_from_the_credentials_it_loads() -> None:
    """--kubeconfig names a credential the unit loads, so the path exists when the daemon starts."""
    argv = exec_start()
    kubeconfig = Path(argv[argv.index("--kubeconfig") + 1])
    loaded = [value.partition(":")[0] for value in unit_values("LoadCredential")]

    assert kubeconfig.parent == Path(CREDENTIALS)
    assert kubeconfig.name in loaded


def test_unit_sets_the_home_a_dynamic_user_lacks() -> None:
    """HOME=/ (what libnss-systemd reports for a dynamic user), so no host depends on that package."""
    assignments = [word for value in unit_values("Environment") for word in shlex.split(value)]
    homes = [word.partition("=")[2] for word in assignments if word.startswith("HOME=")]

    assert unit_values("DynamicUser") == ["yes"]
    assert homes == ["/"]


def test_healthcheck_and_exposed_port_follow_the_metrics_address() -> None:
    """HEALTHCHECK asks /healthz on the port the daemon serves, and that port is the one exposed."""
    port = metrics_port(entrypoint())
    url = urlsplit(healthcheck_url())

    assert (url.hostname, url.port, url.path) == ("127.0.0.1", port, "/healthz")
    assert instruction("EXPOSE").split() == [str(port)]


def test_image_runs_as_a_non_root_user() -> None:
    user, _, group = instruction("USER").partition(":")

    assert user not in ("", "0", "root")
    assert group not in ("0", "root")


def test_dockerfile_copies_files_that_exist() -> None:
    """The build context has what the build stage copies (no image is built here to notice)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    copies = [line.split()[1:] for line in text.splitlines() if line.startswith("COPY ")]
    sources = [source for words in copies if not words[0].startswith("--") for source in words[:-1]]

    assert sources
    assert [source for source in sources if not (REPO / source).exists()] == []


def _answering(status: int) -> type[BaseHTTPRequestHandler]:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            """No access log: these requests are the test's own."""

    return Health


@pytest.fixture
def health_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port on 127.0.0.1 whose /healthz answers the status the test names."""
    server = HTTPServer(("127.0.0.1", 0), _answering(request.param))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("health_port", "healthy"), [(200, True), (503, False)], indirect=["health_port"])
def test_healthcheck_command_tells_healthy_from_unhealthy(health_port: int, healthy: bool) -> None:
    """The HEALTHCHECK's Python exits 0 on 200 from /healthz and non-zero on 503."""
    program, option, code = healthcheck()
    local = code.replace(urlsplit(healthcheck_url()).netloc, f"127.0.0.1:{health_port}")
    result = subprocess.run(
        [sys.executable, option, local], capture_output=True, text=True, timeout=30, check=False
    )

    assert (program, option, local != code) == ("python", "-c", True)
    assert (result.returncode == 0) == healthy, result.stderr
