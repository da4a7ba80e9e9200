"""The ``peeringd`` command line.

Exit codes, the same for every command so scripts and git hooks can rely on
them: 0 nothing to do / success, 1 error (bad file, unreachable system), 2
changes pending (planned, or not applied), 3 a guard refused the plan, 4 a
desired BGP session is not Established on both ends (``status``).

Each command imports what it uses when it runs: `validate` in a git hook and
`--help` must not pay for the Kubernetes client, netmiko and apscheduler.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from peeringd.errors import PeeringdError, SnapshotError, StateFileError

if TYPE_CHECKING:
    from peeringd.adapters.statefile import LoadedState
    from peeringd.core import guards, live
    from peeringd.core import plan as planning
    from peeringd.runtime import reconcile

# Imports inside the commands are deliberate (see the module's docstring).
# ruff: noqa: PLC0415

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "fail",
    "main",
    "parse_address",
    "print_errors",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_REFUSED = 3
EXIT_SESSIONS_DOWN = 4

_STATE_FILE = click.option(
    "-f",
    "--file",
    "state_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The desired-state file.",
)


# Other packages add commands through these entry points: the lab does (`peeringd lab`),
# so that the daemon's install neither carries nor imports it.
PLUGIN_GROUP = "peeringd.commands"


class _Commands(click.Group):
    """peeringd's own commands, and those of installed plugins, loaded only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if (command := super().get_command(ctx, name)) is not None:
            return command
        entry = _plugins().get(name)
        return None if entry is None else entry.load()


def _plugins() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=PLUGIN_GROUP)}


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="peeringd")
def main() -> None:
    """Keep BGP peering between a Calico cluster and its ADCs true to one file."""


def configure_logs(stream: str = "stderr") -> None:
    """Events go to stderr: stdout is the command's product (a plan, JSON, a table).
    The daemon and the lab log to stdout instead, where journald and people look."""
    from peeringd.runtime import logs

    logs.configure(sys.stdout if stream == "stdout" else sys.stderr)


@main.command()
@_STATE_FILE
def validate(state_file: Path) -> None:
    """Check the file's structure and meaning; exit 0 when valid, 1 when not."""
    loaded = _load(state_file)
    click.echo(f"{state_file}: valid ({len(loaded.state.adcs)} ADCs, sha256 {loaded.sha256[:12]})")


_KUBECONFIG = click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    help="kubeconfig file; default $KUBECONFIG, ~/.kube/config, else the in-cluster service account.",
)
_CONTEXT = click.option(
    "--context", help="kubeconfig context; default cluster.kubeconfigContext, else current."
)
_ONLY = click.option(
    "--only", type=click.Choice(["calico", "adc"]), help="Reconcile only Calico or only the ADCs."
)
_OUTPUT = click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")


@main.command()
@_STATE_FILE
@click.option(
    "--live",
    "snapshot",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Plan against a recorded live snapshot (JSON, from `peeringd snapshot`) instead of live systems.",
)
@_KUBECONFIG
@_CONTEXT
@_ONLY
@_OUTPUT
def plan(
    state_file: Path,
    snapshot: Path | None,
    kubeconfig: Path | None,
    context: str | None,
    only: str | None,
    output: str,
) -> None:
    """Show what apply would change: exit 0 nothing, 2 changes, 1 error."""
    from peeringd.core import guards
    from peeringd.core import plan as planning
    from peeringd.runtime import reconcile

    loaded = _load(state_file)
    if snapshot is not None:
        observed = _read_snapshot(snapshot)
        planned = planning.plan(loaded.state, observed)
        result = reconcile.Report(
            reconcile.Outcome.DRIFT if planned.changes else reconcile.Outcome.CONVERGED,
            planned,
            guards.check(loaded.state, observed, planned),
            (),
            (),
            observed,
        )
    else:
        with _connect(loaded, kubeconfig, context, only) as systems:
            result = reconcile.reconcile(loaded, systems, apply=False)
    _print_report(result, output)
    if result.errors or result.planned.errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if result.planned.changes else EXIT_OK)


@main.command()
@_STATE_FILE
@click.option("-y", "--yes", is_flag=True, help="Apply without asking, even on a terminal.")
@_KUBECONFIG
@_CONTEXT
@_ONLY
@_OUTPUT
def apply(
    state_file: Path, yes: bool, kubeconfig: Path | None, context: str | None, only: str | None, output: str
) -> None:
    """Apply the plan once and verify it: exit 0 converged, 1 error, 2 not applied, 3 refused."""
    from peeringd.runtime import reconcile, source

    loaded = _load(state_file)
    confirm = None if yes or not sys.stdin.isatty() else _ask
    with _connect(loaded, kubeconfig, context, only) as systems:
        result = reconcile.reconcile(
            loaded, systems, apply=True, confirm=confirm, revision=source.git_revision(state_file)
        )
        if (calico := result.observed.calico) is not None and "calico" not in dict(result.errors):
            _remove_expired(systems, loaded, {node.name for node in calico.nodes})
    _print_report(result, output)
    exits = {
        reconcile.Outcome.CONVERGED: EXIT_OK,
        reconcile.Outcome.FAILED: EXIT_ERROR,
        reconcile.Outcome.DRIFT: EXIT_CHANGES,
        reconcile.Outcome.REFUSED: EXIT_REFUSED,
    }
    sys.exit(exits[result.outcome])


def _default_lock_file() -> Path:
    from peeringd.runtime import daemon

    return daemon.default_lock_file()


@main.command()
@_STATE_FILE
@_KUBECONFIG
@_CONTEXT
@click.option(
    "--metrics-address",
    metavar="HOST:PORT",
    callback=lambda _, __, value: parse_address(value),
    help="Serve /metrics and /healthz here (off by default).",
)
@click.option(
    "--lock-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=_default_lock_file,
    show_default="$RUNTIME_DIRECTORY/peeringd.lock, else /run/peeringd/peeringd.lock",
    help="Only one daemon may hold it: a second one exits 1, naming the first.",
)
def run(
    state_file: Path,
    kubeconfig: Path | None,
    context: str | None,
    metrics_address: tuple[str, int] | None,
    lock_file: Path,
) -> None:
    """Reconcile continuously: every policy.interval, and at once when the file or the nodes change."""
    # A daemon runs for months: it declines two optional imports it never uses, 9 MB of its
    # 80: invoke, which paramiko loads for `Match exec` in ssh_config files (peeringd reads
    # none), and rich, which structlog loads for tracebacks on a terminal (it logs JSON).
    for unused in ("invoke", "rich"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    from peeringd.runtime import daemon

    configure_logs("stdout")
    options = daemon.Options(
        state_file=state_file,
        kubeconfig=kubeconfig,
        context=context,
        metrics_address=metrics_address,
        lock_file=lock_file,
    )
    sys.exit(daemon.Daemon(options).run())


def parse_address(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@main.command()
@_STATE_FILE
@_KUBECONFIG
@_CONTEXT
@_ONLY
def snapshot(state_file: Path, kubeconfig: Path | None, context: str | None, only: str | None) -> None:
    """Print the live state as JSON, for `plan --live` later or elsewhere."""
    from peeringd.runtime import reconcile

    loaded = _load(state_file)
    with _connect(loaded, kubeconfig, context, only) as systems:
        result = reconcile.reconcile(loaded, systems, apply=False)
    click.echo(result.observed.model_dump_json(indent=2))
    if result.errors:
        print_errors(result)
        sys.exit(EXIT_ERROR)


def _duration(_: click.Context, __: click.Parameter, value: str) -> float:
    """Seconds of ``30s``, ``15m``, ``2h`` or a bare number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = value.strip().lower()
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration such as 30s, 15m or 2h") from None
    if seconds < 0:
        raise click.BadParameter(f"{value!r} is negative")
    return seconds


@main.command()
@_STATE_FILE
@_KUBECONFIG
@_CONTEXT
@_OUTPUT
@click.option(
    "--keep",
    default="15m",
    show_default=True,
    callback=_duration,
    help="How long the CalicoNodeStatus objects it creates stay, so that later calls answer "
    "at once (then the daemon, `apply` or a later `status` removes them); 0 removes them now.",
)
@click.option(
    "--update-period",
    type=click.IntRange(1, 86400),
    help="calico-node's report period for the objects it creates, in seconds; default one the "
    "cluster can carry (10 s, or longer from 100 nodes up, at most 300 s).",
)
def status(
    state_file: Path,
    kubeconfig: Path | None,
    context: str | None,
    output: str,
    keep: float,
    update_period: int | None,
) -> None:
    """Every desired BGP session from both ends: exit 0 all Established, 4 otherwise, 1 error.

    calico-node's end comes from CalicoNodeStatus objects, created where missing; the first
    call waits for calico-node's first report (at most the update period plus 2 s).
    """
    from datetime import timedelta

    from peeringd.runtime import sessions

    loaded = _load(state_file)
    options = sessions.StatusOptions(keep=timedelta(seconds=keep), period=update_period)
    with _connect(loaded, kubeconfig, context, None) as systems:
        rows, errors = sessions.collect(loaded, systems, options)
        calico_api = (
            f"calico: {systems.calico.api_group} at {systems.calico.server}"
            if systems.calico is not None and "calico" not in errors
            else None
        )
    if output == "json":
        click.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
    else:
        if calico_api:
            click.echo(calico_api)
        click.echo(sessions.table(loaded.state, rows), nl=False)
    for target, error in errors.items():
        _print_error(target, error)
    if errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if all(row.verdict == "established" for row in rows) else EXIT_SESSIONS_DOWN)


@main.command()
def rbac() -> None:
    """Print the least-privilege ServiceAccount, ClusterRole and binding (kubectl apply -f -)."""
    from peeringd.adapters import calico

    click.echo(calico.rbac_manifest(), nl=False)


def _remove_expired(systems: reconcile.Systems, loaded: LoadedState, nodes: set[str]) -> None:
    """What `peeringd status` left behind and no longer needs; a failure only warns."""
    from peeringd.runtime import sessions

    assert systems.calico is not None
    try:
        sessions.remove_expired(systems.calico, loaded.state.cluster.name, nodes)
    except PeeringdError as error:
        click.echo(f"warning: expired CalicoNodeStatus objects not removed: {error}", err=True)


def _ask(planned: planning.Plan, refusals: tuple[guards.Refusal, ...]) -> bool:
    from peeringd.runtime import report

    click.echo(report.plan_text(planned, refusals, None), nl=False, err=True)
    return click.confirm("Apply these changes?", err=True)


@contextlib.contextmanager
def _connect(
    loaded: LoadedState, kubeconfig: Path | None, context: str | None, only: str | None
) -> Iterator[reconcile.Systems]:
    """The systems the command reconciles; ``--only`` leaves the other side alone."""
    from peeringd.runtime import reconcile

    configure_logs()
    try:
        systems = reconcile.Systems.connect(loaded, kubeconfig=kubeconfig, context=context, only=only)
    except PeeringdError as error:
        fail(error)
    try:
        yield systems
    finally:
        systems.close()


def _print_report(result: reconcile.Report, output: str) -> None:
    from peeringd.runtime import report

    if output == "json":
        document = {
            "outcome": str(result.outcome),
            **result.planned.model_dump(mode="json"),
            "refusals": [refusal.model_dump(mode="json") for refusal in result.refusals],
            "applied": [change.model_dump(mode="json") for change in result.applied],
            "errors": [{"target": target, "error": str(error)} for target, error in result.errors],
        }
        click.echo(json.dumps(document, indent=2))
        return
    group = result.observed.calico.api_group if result.observed.calico else None
    click.echo(report.plan_text(result.planned, result.refusals, group), nl=False)
    if result.applied:
        click.echo(f"Applied {len(result.applied)} changes; {result.outcome}.")
    print_errors(result)


def print_errors(result: reconcile.Report) -> None:
    for target, error in result.errors:
        _print_error(target, error)


def _print_error(target: str, error: PeeringdError) -> None:
    message = str(error)
    # Device errors already start with the device's name.
    click.echo(f"error: {message if message.startswith(f'{target}: ') else f'{target}: {message}'}", err=True)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the desired-state file (for editors and CI)."""
    from peeringd.core import desired

    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **desired.PeeringState.model_json_schema(by_alias=True),
    }
    click.echo(json.dumps(document, indent=2))


def _load(state_file: Path) -> LoadedState:
    from peeringd.adapters import statefile

    try:
        return statefile.load(state_file)
    except PeeringdError as error:
        fail(error)


def _read_snapshot(path: Path) -> live.LiveState:
    import pydantic

    from peeringd.core import live

    try:
        return live.LiveState.model_validate_json(path.read_bytes())
    except (OSError, pydantic.ValidationError) as error:
        first = error.errors()[0] if isinstance(error, pydantic.ValidationError) else {"msg": str(error)}
        where = ".".join(str(part) for part in first.get("loc", ()))
        fail(SnapshotError(f"{path}: {where + ': ' if where else ''}{first['msg']}"))


def fail(error: PeeringdError) -> NoReturn:
    # State file problems already read "file:line:column: field: message".
    click.echo(str(error) if isinstance(error, StateFileError) else f"error: {error}", err=True)
    sys.exit(EXIT_ERROR)
