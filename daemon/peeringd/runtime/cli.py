"""The ``peeringd`` command line.

Exit codes, the same for every command so scripts and git hooks can rely on
them: 0 nothing to do / success, 1 error (bad file, unreachable system), 2 the
plan has changes, 3 a guard refused the plan.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
import pydantic

from peeringd.adapters import statefile
from peeringd.core import desired, guards, live
from peeringd.core import plan as planning
from peeringd.errors import PeeringdError, SnapshotError, StateFileError
from peeringd.runtime import report

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_REFUSED = 3

_STATE_FILE = click.option(
    "-f",
    "--file",
    "state_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The desired-state file.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="peeringd")
def main() -> None:
    """Keep BGP peering between a Calico cluster and its ADCs true to one file."""


@main.command()
@_STATE_FILE
def validate(state_file: Path) -> None:
    """Check the file's structure and meaning; exit 0 when valid, 1 when not."""
    loaded = _load(state_file)
    click.echo(f"{state_file}: valid ({len(loaded.state.adcs)} ADCs, sha256 {loaded.sha256[:12]})")


@main.command()
@_STATE_FILE
@click.option(
    "--live",
    "snapshot",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Plan against a recorded live snapshot (JSON) instead of the live systems.",
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def plan(state_file: Path, snapshot: Path, output: str) -> None:
    """Show what apply would change: exit 0 nothing, 2 changes, 1 error."""
    loaded = _load(state_file)
    observed = _read_snapshot(snapshot)
    planned = planning.plan(loaded.state, observed)
    refusals = guards.check(loaded.state, observed, planned)
    if output == "json":
        document = {
            **planned.model_dump(mode="json"),
            "refusals": [refusal.model_dump(mode="json") for refusal in refusals],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        group = observed.calico.api_group if observed.calico else None
        click.echo(report.plan_text(planned, refusals, group), nl=False)
    if planned.errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if planned.changes else EXIT_OK)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the desired-state file (for editors and CI)."""
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **desired.PeeringState.model_json_schema(by_alias=True),
    }
    click.echo(json.dumps(document, indent=2))


def _load(state_file: Path) -> statefile.LoadedState:
    try:
        return statefile.load(state_file)
    except PeeringdError as error:
        _fail(error)


def _read_snapshot(path: Path) -> live.LiveState:
    try:
        return live.LiveState.model_validate_json(path.read_bytes())
    except (OSError, pydantic.ValidationError) as error:
        first = error.errors()[0] if isinstance(error, pydantic.ValidationError) else {"msg": str(error)}
        where = ".".join(str(part) for part in first.get("loc", ()))
        _fail(SnapshotError(f"{path}: {where + ': ' if where else ''}{first['msg']}"))


def _fail(error: PeeringdError) -> NoReturn:
    # State file problems already read "file:line:column: field: message".
    click.echo(str(error) if isinstance(error, StateFileError) else f"error: {error}", err=True)
    sys.exit(EXIT_ERROR)
