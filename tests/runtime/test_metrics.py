"""The daemon's metrics as Prometheus reads them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from peeringd.runtime.metrics import Metrics


def sessions(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    (family,) = [f for f in families if f.name == "peeringd_bgp_session_up"]
    return {(s.labels["adc"], s.labels["neighbor"], s.labels["node"]): s.value for s in family.samples}


def test_each_desired_session_is_a_series_and_one_no_longer_desired_goes() -> None:
    metrics = Metrics()
    metrics.sessions([("adc-1", "10.0.0.11", "node-1", True), ("adc-1", "10.0.0.12", "node-2", False)])
    metrics.sessions([("adc-1", "10.0.0.11", "node-1", True), ("adc-1", "10.0.0.13", 'odd"name\\', False)])

    assert sessions(metrics) == {
        ("adc-1", "10.0.0.11", "node-1"): 1.0,
        ("adc-1", "10.0.0.13", 'odd"name\\'): 0.0,
    }


def test_the_other_metrics_are_served_beside_the_sessions() -> None:
    names = {family.name for family in text_string_to_metric_families(Metrics().exposition().decode())}

    assert {"peeringd_reconcile", "peeringd_config_stale", "peeringd_bgp_session_up"} <= names
