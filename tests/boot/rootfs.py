"""A minimal Debian 12 root file system for the boot tests: debootstrap once, then a cached tarball.

The mirror and its keyring are the ones this host's apt uses for Debian, so nothing is fetched
from anywhere apt would not fetch from. No Recommends are installed (debootstrap follows only
Depends): in particular no libnss-systemd, which is what hides a dynamic user's missing home.

The tarball lies in the cache directory under a name that hashes everything that goes into it
(suite, mirror, variant, packages), so a changed package list builds a new one and reruns unpack
the old one in seconds. Builds are serialised by a lock beside the tarball: two test runs on one
machine build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PACKAGES",
    "SUITE",
    "Mirror",
    "RootTarball",
    "cache_dir",
    "cached_root",
    "host_mirror",
    "missing_programs",
    "remove_tree",
]

SUITE = "bookworm"
VARIANT = "minbase"
# systemd: PID 1 for the unit. python3-venv: README's `python3 -m venv`. git: the daemon records
# the state file's commit. tini and python-is-python3: the image's entry point and `python`, as
# python:3.11-slim has them. ca-certificates: pip's HTTPS.
PACKAGES = ("systemd", "python3", "python3-venv", "python-is-python3", "git", "tini", "ca-certificates")
# Bump when the way the tarball is made changes, so that old caches are not reused.
_FORMAT = 1
_SOURCES = Path("/etc/apt")
_DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class Mirror:
    """Where Debian's packages come from, and the keyring that signs them."""

    uri: str
    keyring: Path


@dataclass(frozen=True)
class RootTarball:
    """The cached root file system, and what getting it cost in this run (0 when it was cached)."""

    path: Path
    build_seconds: float

    def unpack(self, destination: Path) -> float:
        """Unpack into ``destination`` (created); the seconds it took."""
        started = time.monotonic()
        destination.mkdir(parents=True)
        _run(["tar", "-C", str(destination), "--numeric-owner", "-xzf", str(self.path)], timeout=600)
        return time.monotonic() - started


def cache_dir() -> Path:
    """$PEERINGD_TEST_CACHE, else $XDG_CACHE_HOME/peeringd-tests, else ~/.cache/peeringd-tests."""
    configured = os.environ.get("PEERINGD_TEST_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "peeringd-tests"


def host_mirror(sources: Path = _SOURCES) -> Mirror | None:
    """The first Debian archive (a URI ending in /debian) among apt's sources, or None."""
    for entry in _source_entries(sources):
        uri = entry.get("uris", "").split()
        if "deb" in entry.get("types", "").split() and uri and uri[0].rstrip("/").endswith("/debian"):
            keyring = Path(entry.get("signed-by", "") or _DEFAULT_KEYRING)
            return Mirror(uri[0], keyring)
    return None


def _source_entries(sources: Path) -> Iterator[dict[str, str]]:
    """Every entry of deb822 .sources files and one-line .list files, as lower-case fields."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for paragraph in text.split("\n\n"):
                fields = {}
                for line in paragraph.splitlines():
                    name, colon, value = line.partition(":")
                    if colon and not line.startswith(("#", " ", "\t")):
                        fields[name.strip().lower()] = value.strip()
                yield fields
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                # deb [option=value ...] uri suite [component ...]
                entry = re.match(r"\s*(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)", line)
                if entry:
                    options = dict(option.partition("=")[::2] for option in (entry[2] or "").split())
                    yield {"types": entry[1], "uris": entry[3], "signed-by": options.get("signed-by", "")}


def cached_root(mirror: Mirror, cache: Path) -> RootTarball:
    """The root file system's tarball, built by debootstrap when the cache does not have it."""
    recipe = {
        "format": _FORMAT,
        "suite": SUITE,
        "variant": VARIANT,
        "mirror": mirror.uri,
        "packages": sorted(PACKAGES),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    tarball = cache / f"debian-{SUITE}-{key}.tar.gz"
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{tarball.name}.lock"):
        if tarball.is_file():
            return RootTarball(tarball, 0.0)
        started = time.monotonic()
        _build(mirror, tarball)
        return RootTarball(tarball, time.monotonic() - started)


def _build(mirror: Mirror, tarball: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="build-") as scratch:
        root = Path(scratch) / "root"
        log = Path(scratch) / "debootstrap.log"
        command = [
            "debootstrap",
            f"--variant={VARIANT}",
            f"--include={','.join(PACKAGES)}",
            f"--keyring={mirror.keyring}",
            SUITE,
            str(root),
            mirror.uri,
        ]
        try:
            with log.open("wb") as output:
                subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=1800, check=True)
        except subprocess.SubprocessError as error:
            tail = log.read_text(errors="replace")[-3000:]
            remove_tree(root)
            raise RuntimeError(f"{' '.join(command)} failed ({error}):\n{tail}") from error
        # The downloaded .debs are installed already: half the size, none of the use.
        for package in (root / "var/cache/apt/archives").glob("*.deb"):
            package.unlink()
        partial = tarball.with_name(tarball.name + ".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-czf", str(partial), "."], timeout=1800)
        partial.rename(tarball)
        remove_tree(root)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def remove_tree(path: Path) -> None:
    """``rm -rf`` that stays on ``path``'s file system and refuses to run while anything is
    mounted below it (a bind mount left behind would take the host's files with it)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        mounted = [line.split()[4] for line in mountinfo if line.split()[4].startswith(prefix)]
    if mounted:
        raise RuntimeError(f"not removing {path}: still mounted below it: {', '.join(mounted)}")
    _run(["rm", "-rf", "--one-file-system", str(path)], timeout=600)


def _run(command: list[str], *, timeout: float) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")


def missing_programs() -> list[str]:
    """The host programs the boot tests need and this machine lacks, each with its package."""
    needed = {
        "debootstrap": "debootstrap",
        "systemd-nspawn": "systemd-container",
        "nsenter": "util-linux",
        "ip": "iproute2",
    }
    return [
        f"{program} (Debian package {package})"
        for program, package in needed.items()
        if not shutil.which(program)
    ]
