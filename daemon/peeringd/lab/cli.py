"""``peeringd lab``: the command, added to ``peeringd`` through the ``peeringd.commands`` entry point.

This module imports only what the command line needs: the lab's servers (aiohttp,
asyncssh, CEL) are imported when the command runs, and their absence (an install
without the ``lab`` extra) is one clear line, not a traceback.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import click

from peeringd.errors import PeeringdError, StateFileError
from peeringd.runtime import cli

if TYPE_CHECKING:
    from peeringd.adapters.statefile import LoadedState
    from peeringd.core import guards
    from peeringd.core import plan as planning
    from peeringd.core import status as session_status
    from peeringd.lab.lab import Lab
    from peeringd.runtime import reconcile

# `peeringd --help` loads this module to list the command: everything else is imported
# when the command runs.
# ruff: noqa: PLC0415

__all__ = ["lab"]


@click.group("lab", invoke_without_command=True)
@click.option(
    "-f",
    "--file",
    "state_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("state/peering.yaml"),
    show_default=True,
    help="The desired-state file; the lab never writes it.",
)
@click.option("--once", is_flag=True, help="Converge, show the result and exit: 0 when converged.")
@click.option("--nodes", "node_count", type=click.IntRange(0, 500), default=3, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=lambda: Path(tempfile.gettempdir()) / f"peeringd-lab-{os.getuid()}",
    show_default="$TMPDIR/peeringd-lab-$UID",
)
@click.option(
    "--metrics-address", metavar="HOST:PORT", callback=lambda _, __, value: cli.parse_address(value)
)
@click.pass_context
def lab(
    context: click.Context,
    state_file: Path,
    once: bool,
    node_count: int,
    workdir: Path,
    metrics_address: tuple[str, int] | None,
) -> None:
    """Run the real daemon against a Kubernetes API and NetScaler simulators on 127.0.0.1.

    Try it without a cluster or an ADC. While it runs, edit the state file, or run
    `peeringd lab add-node` / `peeringd lab remove-node NAME` in another terminal.
    """
    context.obj = workdir
    if context.invoked_subcommand is not None:
        return
    cli.configure_logs("stdout")
    servers = _servers()
    try:
        running = servers.Lab(state_file, workdir, node_count=node_count)
        running.start()
    except PeeringdError as error:
        cli.fail(error)
    try:
        code = _run(running, once, metrics_address)
    finally:
        running.stop()
    sys.exit(code)


def _servers() -> ModuleType:
    """The lab's servers, or one line saying how to install them."""
    try:
        from peeringd.lab import lab as servers
    except ImportError as error:
        click.echo(
            f"error: the lab needs the lab extra ({error.name} is missing): pip install 'peeringd[lab]'",
            err=True,
        )
        sys.exit(cli.EXIT_ERROR)
    return servers


def _run(running: Lab, once: bool, metrics_address: tuple[str, int] | None) -> int:
    from peeringd.adapters import statefile
    from peeringd.runtime import daemon, reconcile, source, watch

    loaded = statefile.load(running.state_file)
    click.echo(f"lab: Kubernetes API at {running.api.url}, {len(running.api.objects('nodes'))} nodes")
    for name, simulator in running.simulators().items():
        click.echo(f"lab: ADC {name} simulated at 127.0.0.1:{simulator.port} (ssh)")
    with reconcile.Systems.connect(loaded, kubeconfig=running.kubeconfig) as systems:
        result = reconcile.reconcile(
            loaded, systems, confirm=_show, revision=source.git_revision(running.user_file)
        )
        click.echo(f"lab: {result.outcome}, {len(result.applied)} changes applied")
        cli.print_errors(result)
        rows = _status(loaded, systems)
    converged = result.outcome == reconcile.Outcome.CONVERGED and all(
        r.verdict == "established" for r in rows
    )
    if once:
        return cli.EXIT_OK if converged else cli.EXIT_ERROR
    click.echo(
        f"lab: reconciling {running.user_file} continuously; edit it, or run `peeringd lab add-node` "
        "in another terminal. Ctrl-C stops."
    )
    watcher = watch.FileWatcher(running.user_file, lambda: _sync(running))
    watcher.start()
    try:
        options = daemon.Options(
            state_file=running.state_file,
            kubeconfig=running.kubeconfig,
            metrics_address=metrics_address,
            lock_file=running.workdir / "peeringd.lock",
        )
        return daemon.Daemon(options).run()
    finally:
        watcher.stop()


def _show(planned: planning.Plan, refusals: tuple[guards.Refusal, ...]) -> bool:
    """Show the plan before it is applied, without asking."""
    from peeringd.runtime import report

    click.echo(report.plan_text(planned, refusals, None), nl=False)
    return True


def _status(loaded: LoadedState, systems: reconcile.Systems) -> tuple[session_status.Row, ...]:
    """Both ends of every session, once the lab's calico-node has reported (a second or so)."""
    from peeringd.runtime import sessions

    deadline = time.monotonic() + 10
    while True:
        rows, _ = sessions.collect(loaded, systems)
        if all(row.verdict == "established" for row in rows) or time.monotonic() > deadline:
            click.echo(sessions.table(loaded.state, rows), nl=False)
            return rows
        time.sleep(0.5)


def _sync(running: Lab) -> None:
    try:
        running.sync()
    except StateFileError as error:
        click.echo(
            f"lab: {running.user_file} not copied, the daemon keeps the last good one:\n{error}", err=True
        )


@lab.command("add-node")
@click.option("--name", help="Node name; default the next node-N.")
@click.option("--address", help="Its BGP address; default the next free one.")
@click.pass_obj
def add_node(workdir: Path, name: str | None, address: str | None) -> None:
    """Add a Node to the running lab's cluster, as `kubeadm join` would."""
    try:
        added, at = _servers().add_node(workdir, name, address)
    except PeeringdError as error:
        cli.fail(error)
    click.echo(f"node {added} joined with address {at}")


@lab.command("remove-node")
@click.argument("name")
@click.pass_obj
def remove_node(workdir: Path, name: str) -> None:
    """Delete a Node from the running lab's cluster."""
    try:
        _servers().remove_node(workdir, name)
    except PeeringdError as error:
        cli.fail(error)
    click.echo(f"node {name} removed")
