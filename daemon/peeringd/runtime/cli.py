"""The ``peeringd`` command line.

Exit codes, the same for every command so scripts and git hooks can rely on
them: 0 nothing to do / success, 1 error (bad file, unreachable system), 2
changes pending (planned, or not applied), 3 a guard refused the plan (or
``apply`` refused a desired state it reverted before), 4 a desired BGP session
is not Established on both ends (``status``), 5 ``apply`` reverted its changes
because the sessions did not come back (``policy.confirm``).

Each command imports what it uses when it runs: `validate` in a git hook and
`--help` must not pay for the Kubernetes client, netmiko and apscheduler.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
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
    from peeringd.runtime import confirm, reconcile

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
EXIT_REVERTED = 5

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
@click.option(
    "-f",
    "--file",
    "state_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The desired-state file.",
)
@click.argument("more", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
def validate(state_file: Path | None, more: tuple[Path, ...]) -> None:
    """Check each file's structure and meaning (-f FILE, or FILE...: a pre-commit hook passes
    several); exit 0 when all are valid, 1 when one is not."""
    from peeringd.adapters import statefile

    files = ([state_file] if state_file else []) + list(more)
    if not files:
        raise click.UsageError("name a file: -f FILE, or FILE...")
    invalid = False
    for path in files:
        try:
            loaded = statefile.load(path, secrets=False)
        except PeeringdError as error:
            click.echo(str(error) if isinstance(error, StateFileError) else f"error: {error}", err=True)
            invalid = True
            continue
        click.echo(f"{path}: valid ({len(loaded.state.adcs)} ADCs, sha256 {loaded.sha256[:12]})")
    sys.exit(EXIT_ERROR if invalid else EXIT_OK)


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
_ADOPT = click.option(
    "--adopt/--no-adopt",
    default=None,
    help="Take hand-made objects that agree with the file into ownership in place (policy.adopt, "
    "which this overrides for the run).",
)
_YES = click.option("-y", "--yes", is_flag=True, help="Apply without asking, even on a terminal.")


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
@_ADOPT
@_OUTPUT
def plan(
    state_file: Path,
    snapshot: Path | None,
    kubeconfig: Path | None,
    context: str | None,
    only: str | None,
    adopt: bool | None,
    output: str,
) -> None:
    """Show what apply would change: exit 0 nothing, 2 changes, 1 error."""
    from peeringd.core import guards
    from peeringd.core import plan as planning
    from peeringd.runtime import reconcile

    loaded = _load(state_file, adopt)
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
@_YES
@_KUBECONFIG
@_CONTEXT
@_ONLY
@_ADOPT
@_OUTPUT
@click.option(
    "--force",
    is_flag=True,
    help="Apply a desired state even though policy.confirm reverted it before.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="PEERINGD_STATE_DIR",
    help="Where apply remembers the desired states it reverted; default $STATE_DIRECTORY, "
    "else $XDG_STATE_HOME/peeringd, else ~/.local/state/peeringd.",
)
def apply(
    state_file: Path,
    yes: bool,
    kubeconfig: Path | None,
    context: str | None,
    only: str | None,
    adopt: bool | None,
    output: str,
    force: bool,
    state_dir: Path | None,
) -> None:
    """Apply the plan once and verify it: exit 0 converged, 1 error, 2 not applied, 3 refused,
    5 reverted (policy.confirm: the sessions did not come back)."""
    from peeringd.runtime import confirm, reconcile, source

    loaded = _load(state_file, adopt)
    memory = confirm.RevertMemory(state_dir / "reverted") if state_dir else confirm.default_memory()
    if loaded.state.policy.confirm is not None and not force and (why := memory.recall(loaded.sha256)):
        click.echo(
            f"error: this desired state (sha256 {loaded.sha256[:12]}) was reverted: {why}; "
            "change the file, or apply --force",
            err=True,
        )
        sys.exit(EXIT_REFUSED)
    ask = None if yes or not sys.stdin.isatty() else _ask
    revision = source.git_revision(state_file)
    verdict = None
    with _connect(loaded, kubeconfig, context, only) as systems:
        result = reconcile.reconcile(loaded, systems, apply=True, confirm=ask, revision=revision)
        if confirm.wanted(loaded, result):
            verdict = confirm.confirm_or_revert(loaded, systems, result, revision=revision)
        if (calico := result.observed.calico) is not None and "calico" not in dict(result.errors):
            _remove_expired(systems, loaded, {node.name for node in calico.nodes})
    _print_report(result, output, verdict)
    if verdict is None or verdict.confirmed:
        if verdict is not None:
            memory.forget(loaded.sha256)
        sys.exit(_exit_code(result))
    memory.remember(loaded.sha256, verdict.reason())
    sys.exit(EXIT_REVERTED)


@main.command()
@_STATE_FILE
@_YES
@_KUBECONFIG
@_CONTEXT
@_OUTPUT
def release(state_file: Path, yes: bool, kubeconfig: Path | None, context: str | None, output: str) -> None:
    """Take peeringd's marks off every object it owns, leaving every object and session in place
    (stop the daemon first): exit 0 released, 1 error, 2 not applied."""
    from peeringd.runtime import migrate, source

    loaded = _load(state_file)
    confirm = None if yes or not sys.stdin.isatty() else _ask
    with _connect(loaded, kubeconfig, context, None) as systems:
        result = migrate.release(loaded, systems, confirm=confirm, revision=source.git_revision(state_file))
    _print_report(result, output)
    sys.exit(_exit_code(result))


def _adc_login(value: str) -> tuple[str, str, int]:
    name, address = _pair(value, "--adc", "NAME=HOST[:PORT]")
    host, colon, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    if colon and (not port.isdigit() or not 0 < int(port) < 65536):
        raise click.BadParameter(f"{value!r}: {port!r} is not a port", param_hint="--adc")
    return name, host, int(port) if colon else 22


def _pair(value: str, option: str, form: str) -> tuple[str, str]:
    name, equals, rest = value.partition("=")
    if not equals or not name or not rest:
        raise click.BadParameter(f"{value!r} is not {form}", param_hint=option)
    return name, rest


def _exit_code(result: reconcile.Report) -> int:
    from peeringd.runtime import reconcile

    return {
        reconcile.Outcome.CONVERGED: EXIT_OK,
        reconcile.Outcome.FAILED: EXIT_ERROR,
        reconcile.Outcome.DRIFT: EXIT_CHANGES,
        reconcile.Outcome.REFUSED: EXIT_REFUSED,
    }[result.outcome]


@main.command("import")
@_KUBECONFIG
@_CONTEXT
@click.option(
    "--cluster", required=True, help="This cluster's name in peeringd's marks (a lower-case DNS label)."
)
@click.option(
    "--adc",
    "adcs",
    multiple=True,
    required=True,
    metavar="NAME=HOST[:PORT]",
    callback=lambda _, __, values: tuple(_adc_login(value) for value in values),
    help="An ADC to read, by the name the file gives it and its SSH address; repeat for each.",
)
@click.option(
    "--peer-ip",
    "peer_ips",
    multiple=True,
    metavar="NAME=IP",
    callback=lambda _, __, values: dict(_pair(value, "--peer-ip", "NAME=IP") for value in values),
    help="Where the nodes peer with ADC NAME, when neither its SSH address nor its AS tells which "
    "BGPPeer points at it.",
)
@click.option("--username", required=True, help="The SSH user on every ADC.")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="OpenSSH known_hosts holding the ADCs' host keys; default ~/.ssh/known_hosts.",
)
@click.option("--platform", type=click.Choice(["netscaler", "frr"]), default="netscaler", show_default=True)
@click.option(
    "-o",
    "--output",
    "output_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write here, not stdout.",
)
@click.option("--partial", is_flag=True, help="Write what v1 can describe, and list the rest as comments.")
def import_(
    kubeconfig: Path | None,
    context: str | None,
    cluster: str,
    adcs: tuple[tuple[str, str, int], ...],
    peer_ips: dict[str, str],
    username: str,
    password_file: Path | None,
    key_file: Path | None,
    known_hosts: Path | None,
    platform: str,
    output_file: Path | None,
    partial: bool,
) -> None:
    """Write the state file that describes the peering running now, reading (never writing) the
    cluster and each ADC: exit 0 written, 1 when something cannot be described (unless --partial)."""
    from peeringd.core import inventory
    from peeringd.runtime import migrate

    if (password_file is None) == (key_file is None):
        raise click.UsageError("give one of --password-file and --key-file")
    if output_file is not None and output_file.exists():
        click.echo(f"error: {output_file} exists; not overwritten", err=True)
        sys.exit(EXIT_ERROR)
    configure_logs()
    try:
        request = migrate.request(
            cluster=cluster,
            context=context,
            adcs=adcs,
            peer_ips=peer_ips,
            login={
                "username": username,
                "password_file": password_file,
                "key_file": key_file,
                "known_hosts_file": known_hosts,
                "platform": platform,
            },
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        calico, devices = migrate.read(request, kubeconfig=kubeconfig, context=context)
        description = inventory.describe(request, calico, devices)
        for note in description.notes:
            click.echo(f"note: {note}", err=True)
        for gap in description.gaps:
            click.echo(f"{'not described' if partial else 'cannot describe'}: {gap}", err=True)
        if description.gaps and not partial:
            sys.exit(EXIT_ERROR)
        text = migrate.render(description, str(output_file) if output_file else migrate.STDOUT)
    except PeeringdError as error:
        fail(error)
    if output_file is None:
        click.echo(text, nl=False)
    else:
        output_file.write_text(text)
        click.echo(f"{output_file}: written ({len(description.document['adcs'])} ADCs)", err=True)


def _default_lock_file() -> Path:
    from peeringd.runtime import daemon

    return daemon.default_lock_file()


# The defaults are runtime.leader's (DEFAULT_NAMESPACE, DEFAULT_LEASE_NAME), written out here
# so that `--help` does not import the daemon; tests/runtime/test_cli.py checks they agree.
_LEASE_NAMESPACE = click.option(
    "--lease-namespace",
    default="kube-system",
    show_default=True,
    help="Namespace of the leader-election Lease.",
)
_LEASE_NAME = click.option(
    "--lease-name", default="peeringd", show_default=True, help="Name of the leader-election Lease."
)


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
@click.option(
    "--leader-elect",
    is_flag=True,
    help="Run active/standby with daemons on other hosts: only the holder of a Lease in the cluster writes.",
)
@_LEASE_NAMESPACE
@_LEASE_NAME
@click.option(
    "--lease-duration",
    type=click.IntRange(min=3, max=3600),
    default=15,
    show_default=True,
    metavar="SECONDS",
    help="How long the standby waits for a silent leader before taking over.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    metavar="SECONDS",
    help="Seconds between passes instead of the file's policy.interval, below its 5 s minimum "
    "if need be: for soaks and tests, not for production.",
)
def run(
    state_file: Path,
    kubeconfig: Path | None,
    context: str | None,
    metrics_address: tuple[str, int] | None,
    lock_file: Path,
    leader_elect: bool,
    lease_namespace: str,
    lease_name: str,
    lease_duration: int,
    interval: float | None,
) -> None:
    """Reconcile continuously: every policy.interval, and at once when the file or the nodes change."""
    # A daemon runs for months: it declines optional imports it never uses, 11 MB of its 80:
    # invoke, which paramiko loads for `Match exec` in ssh_config files (peeringd reads
    # none); rich, which structlog loads for tracebacks on a terminal (it logs JSON); and a
    # charset detector, which requests (the Kubernetes client's, for OIDC tokens) loads to
    # guess the encoding of a reply that does not name one, and warns when it has none.
    for unused in ("invoke", "rich", "charset_normalizer", "chardet"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    warnings.filterwarnings("ignore", "Unable to find acceptable character detection", module="requests")
    from peeringd.runtime import daemon, leader

    configure_logs("stdout")
    election = leader.Settings(lease_namespace, lease_name, lease_duration) if leader_elect else None
    options = daemon.Options(
        state_file=state_file,
        kubeconfig=kubeconfig,
        context=context,
        metrics_address=metrics_address,
        lock_file=lock_file,
        leader_election=election,
        interval=interval,
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
@_LEASE_NAMESPACE
@_LEASE_NAME
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
    lease_namespace: str,
    lease_name: str,
    keep: float,
    update_period: int | None,
) -> None:
    """Every desired BGP session from both ends: exit 0 all Established, 4 otherwise, 1 error.

    calico-node's end comes from CalicoNodeStatus objects, created where missing; the first
    call waits for calico-node's first report (at most the update period plus 2 s).
    """
    from datetime import timedelta

    from peeringd.runtime import leader, sessions

    loaded = _load(state_file)
    options = sessions.StatusOptions(keep=timedelta(seconds=keep), period=update_period)
    with _connect(loaded, kubeconfig, context, None) as systems:
        # Read before the sessions: collecting them may wait for calico-node's first report.
        cluster_context = context or loaded.state.cluster.kubeconfig_context
        holder = (
            leader.describe_lease(kubeconfig, cluster_context, lease_namespace, lease_name)
            if output == "text"
            else None
        )
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
        if holder:
            click.echo(holder)
        click.echo(sessions.table(loaded.state, rows), nl=False)
    for target, error in errors.items():
        _print_error(target, error)
    if errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if all(row.verdict == "established" for row in rows) else EXIT_SESSIONS_DOWN)


@main.command()
@_LEASE_NAMESPACE
@_LEASE_NAME
@click.option(
    "--calico-namespace",
    default="calico-system",
    show_default=True,
    help="Where calico-node runs (kube-system for manifest installs): the BGP password Secret's Roles.",
)
def rbac(lease_namespace: str, lease_name: str, calico_namespace: str) -> None:
    """Print the least-privilege ServiceAccount, roles and bindings (kubectl apply -f -)."""
    from peeringd.adapters import calico, password_secret

    click.echo(calico.rbac_manifest(lease_namespace, lease_name), nl=False)
    click.echo(password_secret.rbac_manifest(calico_namespace), nl=False)


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


def _print_report(result: reconcile.Report, output: str, verdict: confirm.Verdict | None = None) -> None:
    from peeringd.runtime import report

    if output == "json":
        document = {
            "outcome": str(result.outcome),
            **result.planned.model_dump(mode="json"),
            "counts": {str(action): count for action, count in result.planned.counts().items()},
            "refusals": [refusal.model_dump(mode="json") for refusal in result.refusals],
            "applied": [change.model_dump(mode="json") for change in result.applied],
            "errors": [{"target": target, "error": str(error)} for target, error in result.errors],
        }
        if verdict is not None:
            document["confirmation"] = verdict.document()
        click.echo(json.dumps(document, indent=2))
        return
    group = result.observed.calico.api_group if result.observed.calico else None
    click.echo(report.plan_text(result.planned, result.refusals, group), nl=False)
    if result.applied:
        click.echo(f"Applied {len(result.applied)} changes; {result.outcome}.")
    print_errors(result)
    if verdict is not None:
        click.echo(verdict.text(), nl=False, err=not verdict.confirmed)


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


def _load(state_file: Path, adopt: bool | None = None) -> LoadedState:
    """The valid file; ``adopt`` (--adopt/--no-adopt) overrides its policy.adopt for this run."""
    import dataclasses

    from peeringd.adapters import statefile

    try:
        loaded = statefile.load(state_file)
    except PeeringdError as error:
        fail(error)
    if adopt is None:
        return loaded
    policy = loaded.state.policy.model_copy(update={"adopt": adopt})
    return dataclasses.replace(loaded, state=loaded.state.model_copy(update={"policy": policy}))


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
