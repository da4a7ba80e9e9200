"""Moving a hand-built peering to peeringd and back: ``peeringd import`` and ``peeringd release``.

Import reads the cluster (BGPConfiguration ``default``, IPPools, Nodes,
BGPPeers) and each named ADC with the same adapters a pass observes with, and
writes nothing to either; ``core.inventory`` turns what it read into the v1
document, and this module writes it with ruamel.yaml, a comment beside each
value saying where it came from. The text is loaded back before it is written:
a file import writes always validates.

Release is a pass whose plan is ``core.release``: the marks come off through
the same adapters that put them on, previewed and confirmed like ``apply``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from peeringd.adapters import statefile
from peeringd.adapters.calico import Calico
from peeringd.adapters.frr import Frr
from peeringd.adapters.netscaler import NetScaler
from peeringd.adapters.statefile import LoadedState
from peeringd.core import desired, guards, inventory, live
from peeringd.core import release as releasing
from peeringd.core.plan import Plan
from peeringd.errors import PeeringdError
from peeringd.runtime import reconcile

__all__ = ["STDOUT", "read", "release", "render", "request"]

_DRIVERS: dict[str, type[NetScaler] | type[Frr]] = {"netscaler": NetScaler, "frr": Frr}
# The file name errors use when the document goes to stdout.
STDOUT = "<stdout>"
_HEADER = """\
peeringd/v1 state written by `peeringd import` from what runs now: each comment
says where its value came from. Review it, then take the objects over in place:
  peeringd validate -f {file}
  peeringd plan --adopt -f {file}     (adoptions only)
  peeringd apply --adopt -f {file}"""


def read(
    request: inventory.Request, *, kubeconfig: Path | None = None, context: str | None = None
) -> tuple[live.CalicoSnapshot, dict[str, live.AdcSnapshot | str]]:
    """Calico as observed, and each ADC's snapshot or why it could not be read; nothing is written.

    Calico that cannot be read raises (there is nothing to describe without it); an ADC
    that cannot be read is reported for the description to name.
    """
    with Calico.connect(kubeconfig, context) as calico:
        snapshot = calico.observe()
    devices: dict[str, live.AdcSnapshot | str] = {}
    for adc in request.adcs:
        device = _DRIVERS[request.login.platform].login(adc.name, _ssh(request.login, adc))
        try:
            devices[adc.name] = device.observe()
        except PeeringdError as error:
            devices[adc.name] = str(error).removeprefix(f"{adc.name}: ")
        finally:
            device.close()
    return snapshot, devices


def _ssh(login: inventory.Login, adc: inventory.AdcLogin) -> desired.SSH:
    """How the driver logs in to ``adc``; raises pydantic's ValidationError for what a state
    file could not hold either (a user name with a space, a host that is no host name)."""
    return desired.SSH(
        host=adc.host,
        port=adc.port,
        username=login.username,
        password_file=_path(login.password_file),
        key_file=_path(login.key_file),
        known_hosts_file=_path(login.known_hosts_file),
    )


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def render(description: inventory.Description, file: str) -> str:
    """The document as YAML with its comments; raises StateFileError (naming ``file``) if the
    text would not load, which would be a bug here rather than in what was read."""
    document = _commented(description.document)
    comments = [_HEADER.format(file=file if file != STDOUT else "FILE")]
    if description.gaps:
        lines = "\n".join(f"  {gap}" for gap in description.gaps)
        comments.append(f"Not described (peeringd/v1 cannot say it; peeringd leaves it as it is):\n{lines}")
    if description.notes:
        comments.append("Notes:\n" + "\n".join(f"  {note}" for note in description.notes))
    document.yaml_set_start_comment("\n\n".join(comments) + "\n\n")
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # a comment is one line, however long
    stream = io.StringIO()
    yaml.dump(document, stream)
    text = stream.getvalue()
    statefile.parse(text.encode(), file)
    return text


def _commented(node: Any, indent: int = 0) -> Any:
    """ruamel's nodes for the document: ``Sourced`` leaves become values with an end-of-line
    comment, the comments of one mapping in one column."""
    if isinstance(node, list):
        # Items of a sequence are mappings here, their keys two columns in from the dash.
        return CommentedSeq(_commented(item, indent + 2) for item in node)
    if not isinstance(node, dict):
        raise TypeError(f"not part of a document: {node!r}")
    mapping = CommentedMap()
    sourced = {key: value for key, value in node.items() if isinstance(value, inventory.Sourced)}
    column = max((indent + len(f"{key}: {_shown(value.value)}") for key, value in sourced.items()), default=0)
    for key, value in node.items():
        if isinstance(value, inventory.Sourced):
            mapping[key] = _flow(value.value)
            mapping.yaml_add_eol_comment(f"# {value.source}", key, column=column + 2)
        else:
            mapping[key] = _commented(value, indent + 2)
    return mapping


def _shown(value: Any) -> str:
    """How ruamel writes a plain value, to line the comments up after it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "''"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_shown(item)}" for key, item in value.items()) + "}"
    return str(value)


def _flow(value: Any) -> Any:
    """A sourced list or mapping on one line, so its comment stays beside it."""
    if isinstance(value, list):
        sequence = CommentedSeq(value)
        sequence.fa.set_flow_style()
        return sequence
    if isinstance(value, dict):
        mapping = CommentedMap(value)
        mapping.fa.set_flow_style()
        return mapping
    return value


def release(
    loaded: LoadedState,
    systems: reconcile.Systems,
    *,
    confirm: Callable[[Plan, tuple[guards.Refusal, ...]], bool] | None = None,
    revision: str | None = None,
) -> reconcile.Report:
    """One pass that takes this cluster's marks off everything peeringd owns, and checks that
    none is left; objects and sessions stay."""
    return reconcile.reconcile(
        loaded, systems, apply=True, confirm=confirm, revision=revision, planner=releasing.release
    )


def request(
    *,
    cluster: str,
    context: str | None,
    adcs: tuple[tuple[str, str, int], ...],
    peer_ips: dict[str, str],
    login: dict[str, Any],
) -> inventory.Request:
    """The import's request from the command line's values; raises ValueError naming the option.

    File paths are written absolute: the state file may end up anywhere, the secrets stay put.
    """
    names = [name for name, _, _ in adcs]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"--adc names {', '.join(twice)} more than once")
    if unknown := sorted(set(peer_ips) - set(names)):
        raise ValueError(f"--peer-ip names {', '.join(unknown)}, which no --adc names")
    try:
        request = inventory.Request(
            cluster=cluster,
            context=context,
            adcs=tuple(
                inventory.AdcLogin(name=name, host=host, port=port, peer_ip=peer_ips.get(name))
                for name, host, port in adcs
            ),
            login=inventory.Login(
                **{
                    key: str(value.absolute()) if isinstance(value, Path) else value
                    for key, value in login.items()
                }
            ),
        )
        for adc in request.adcs:
            _ssh(request.login, adc)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None
    return request
