"""What ships beside the package, read as systemd and Docker read it: the unit and the Dockerfile.

Shared by the offline checks (tests/test_shipping.py) and the boot tests (tests/boot/), so
both test the same lines.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from tests.support import REPO

__all__ = [
    "CREDENTIALS",
    "DOCKERFILE",
    "UNIT",
    "Stage",
    "entrypoint",
    "exec_start",
    "final_stage",
    "healthcheck",
    "instruction",
    "metrics_port",
    "seconds",
    "stages",
    "unit_values",
]

UNIT = REPO / "systemd" / "peeringd.service"
DOCKERFILE = REPO / "Dockerfile"
# What `%d` in the unit stands for: the service's credentials directory.
CREDENTIALS = "/run/credentials/peeringd.service"


def unit_values(key: str) -> list[str]:
    """Every value of ``key`` in the unit, continuation lines joined."""
    text = UNIT.read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    pairs = (line.partition("=") for line in lines if line and line[0] not in "#;[")
    return [value.strip() for name, _, value in pairs if name.strip() == key]


def exec_start() -> list[str]:
    (command,) = unit_values("ExecStart")
    argv = shlex.split(command.replace("%d", CREDENTIALS))
    assert not [word for word in argv if "%" in word], "a specifier this test does not expand"
    return argv


def seconds(span: str) -> float:
    """A systemd time span of one unit ("30s", "10min", "90") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?", span.strip())
    assert match, f"a time span this test does not read: {span!r}"
    factor = {"ms": 0.001, "min": 60, "m": 60, "h": 3600}.get(match[2] or "s", 1)
    return float(match[1]) * factor


@dataclass(frozen=True)
class Stage:
    """One FROM ... stage of the Dockerfile: its base, its name and its instructions."""

    base: str
    name: str | None
    instructions: tuple[tuple[str, str], ...]


def stages() -> list[Stage]:
    """The Dockerfile's stages in order, each instruction as (INSTRUCTION, arguments)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    found: list[Stage] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        name, _, arguments = line.partition(" ")
        if name.upper() == "FROM":
            words = arguments.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], alias, ()))
        else:
            assert found, "an instruction before the first FROM"
            last = found[-1]
            instruction_ = (name.upper(), arguments.strip())
            found[-1] = Stage(last.base, last.name, (*last.instructions, instruction_))
    return found


def final_stage() -> list[tuple[str, str]]:
    """The Dockerfile's instructions after its last FROM, as (INSTRUCTION, arguments)."""
    return list(stages()[-1].instructions)


def instruction(name: str) -> str:
    """The arguments of the final stage's last ``name`` instruction (the one in effect)."""
    found = [arguments for instruction_name, arguments in final_stage() if instruction_name == name]
    assert found, f"the final stage has no {name}"
    return found[-1]


def entrypoint() -> list[str]:
    """The ENTRYPOINT's ``peeringd run ...`` part (after tini)."""
    argv: list[str] = json.loads(instruction("ENTRYPOINT"))
    return argv[argv.index("peeringd") :]


def healthcheck() -> list[str]:
    _, _, command = instruction("HEALTHCHECK").partition(" CMD ")
    argv: list[str] = json.loads(command)
    return argv


def metrics_port(argv: list[str]) -> int:
    return int(argv[argv.index("--metrics-address") + 1].rpartition(":")[2])
