"""The daemon's metrics as Prometheus reads them."""

from __future__ import annotations

import ipaddress

from prometheus_client.parser import text_string_to_metric_families

from peeringd.core import status
from peeringd.runtime.metrics import Metrics


def row(node: str, address: str, verdict: status.Verdict) -> status.Row:
    return status.Row(
        adc="adc-1",
        node=node,
        address=ipaddress.IPv4Address(address),
        adc_state=None,
        adc_up_down=None,
        adc_prefixes=None,
        calico_state=None,
        calico_since=None,
        verdict=verdict,
    )


def sessions(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    (family,) = [f for f in families if f.name == "peeringd_bgp_session_up"]
    return {(s.labels["adc"], s.labels["neighbor"], s.labels["node"]): s.value for s in family.samples}


def test_each_desired_session_is_a_series_and_one_no_longer_desired_goes() -> None:
    metrics = Metrics()
    metrics.sessions([row("node-1", "10.0.0.11", "established"), row("node-2", "10.0.0.12", "down")])
    metrics.sessions([row("node-1", "10.0.0.11", "established"), row('odd"name\\', "10.0.0.13", "down")])

    assert sessions(metrics) == {
        ("adc-1", "10.0.0.11", "node-1"): 1.0,
        ("adc-1", "10.0.0.13", 'odd"name\\'): 0.0,
    }


def test_the_other_metrics_are_served_beside_the_sessions() -> None:
    names = {family.name for family in text_string_to_metric_families(Metrics().exposition().decode())}

    assert {"peeringd_reconcile", "peeringd_config_stale", "peeringd_bgp_session_up"} <= names
