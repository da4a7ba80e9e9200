"""``peeringd status``: every desired BGP session from both ends, as a table or JSON."""

from __future__ import annotations

from collections.abc import Iterator

from peeringd.adapters.statefile import LoadedState
from peeringd.core import desired, live, nodes, status
from peeringd.errors import PeeringdError
from peeringd.runtime import reconcile

__all__ = ["collect", "node_statuses", "table"]


def collect(
    loaded: LoadedState, systems: reconcile.Systems
) -> tuple[tuple[status.Row, ...], dict[str, PeeringdError]]:
    """Observe every system and join both ends of each desired session."""
    observed, errors = reconcile.observe(loaded, systems)
    if observed.calico is None or systems.calico is None:
        return (), errors
    try:
        statuses = node_statuses(loaded.state, observed.calico, systems)
    except PeeringdError as error:
        errors["calico"] = error
        statuses = ()
    return status.rows(loaded.state, observed.calico, statuses, observed.adcs), errors


def node_statuses(
    state: desired.PeeringState, calico: live.CalicoSnapshot, systems: reconcile.Systems
) -> tuple[live.NodeStatus, ...]:
    """calico-node's view of each selected node (CalicoNodeStatus, created where missing)."""
    assert systems.calico is not None
    speakers, _ = nodes.speakers(calico.nodes, state.cluster.as_number, state.cluster.nodes.exclude)
    return systems.calico.node_statuses(tuple(s.node for s in speakers), cluster=state.cluster.name)


_COLUMNS = ("NODE", "ADDRESS", "ADC", "UP/DOWN", "PREFIXES", "CALICO", "SINCE", "VERDICT")


def table(state: desired.PeeringState, rows: tuple[status.Row, ...]) -> str:
    """One table per ADC, like ``calicoctl node status`` with the ADC's column beside it."""
    return "\n".join(_tables(state, rows)) + "\n"


def _tables(state: desired.PeeringState, rows: tuple[status.Row, ...]) -> Iterator[str]:
    for adc in state.adcs:
        mine = [row for row in rows if row.adc == adc.name]
        yield f"{adc.name} (AS {adc.as_number}, nodes peer with {adc.peer_ip})"
        cells = [
            (
                row.node,
                str(row.address),
                row.adc_state or "-",
                row.adc_up_down or "-",
                "-" if row.adc_prefixes is None else str(row.adc_prefixes),
                row.calico_state or "-",
                row.calico_since or "-",
                row.verdict,
            )
            for row in mine
        ]
        widths = [max(len(text) for text in column) for column in zip(_COLUMNS, *cells, strict=False)]
        for line in (_COLUMNS, *cells):
            yield (
                "  " + "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            )
        if not mine:
            yield "  (no selected node)"
