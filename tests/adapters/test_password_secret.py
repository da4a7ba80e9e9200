"""peeringd's BGP password Secret through the lab's API server: where it goes, what calico-node
may read, and the BGPPeer's reference to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ruamel.yaml import YAML

from peeringd.adapters import calico, password_secret
from peeringd.core import live, secret
from peeringd.core.plan import Action, PeerChange, PeerSpec, SecretChange
from peeringd.errors import CalicoForbidden
from tests.conftest import Cluster


@pytest.fixture
def connected(cluster: Cluster) -> Iterator[calico.Calico]:
    with calico.Calico.connect(cluster.kubeconfig) as side:
        yield side


def data(**values: str) -> tuple[tuple[str, secret.Password], ...]:
    return tuple(sorted((name.replace("_", "-"), secret.Password(value)) for name, value in values.items()))


def change(
    action: Action, observed: live.PasswordSecret, after: tuple[tuple[str, secret.Password], ...] | None
) -> SecretChange:
    return SecretChange(
        action=action,
        namespace=observed.namespace,
        name=observed.name,
        before=observed.data if observed.exists else None,
        after=after,
        resource_version=observed.resource_version or None,
    )


def test_calico_system_is_chosen_when_it_exists(cluster: Cluster, connected: calico.Calico) -> None:
    cluster.server.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "calico-system"}})

    snapshot = connected.observe(passwords=True)

    assert snapshot.passwords is not None
    assert (snapshot.passwords.namespace, snapshot.passwords.exists) == ("calico-system", False)


def test_without_it_kube_system_and_a_configured_one_wins(connected: calico.Calico) -> None:
    detected = connected.observe(passwords=True).passwords
    configured = connected.observe(passwords=True, password_namespace="calico-node-ns").passwords

    assert detected is not None
    assert configured is not None
    assert (detected.namespace, configured.namespace) == ("kube-system", "calico-node-ns")


def test_no_password_wanted_reads_no_secret(cluster: Cluster, connected: calico.Calico) -> None:
    connected.observe()
    cluster.server.clear_journal()

    assert connected.observe().passwords is None
    assert cluster.server.count("get", resource="secrets") == 0


def test_created_patched_and_deleted_with_its_marks(cluster: Cluster, connected: calico.Calico) -> None:
    def observed() -> live.PasswordSecret:
        found = connected.observe(passwords=True).passwords
        assert found is not None
        return found

    list(
        connected.apply(
            (change(Action.CREATE, observed(), data(adc_1="One", adc_2="Two")),),
            cluster="prod-1",
            state_hash="h",
        )
    )
    first = observed()
    list(
        connected.apply((change(Action.UPDATE, first, data(adc_1="Uno")),), cluster="prod-1", state_hash="h")
    )
    second = observed()
    list(connected.apply((change(Action.DELETE, second, None),), cluster="prod-1", state_hash="h"))

    assert first.data == data(adc_1="One", adc_2="Two")
    assert ("app.kubernetes.io/managed-by", "peeringd") in first.labels
    assert second.data == data(adc_1="Uno")
    assert observed().exists is False


def test_calico_node_may_read_it_once_the_rbac_roles_are_applied(
    cluster: Cluster, connected: calico.Calico
) -> None:
    before = connected.observe(passwords=True).passwords
    for document in YAML(typ="safe").load_all(password_secret.rbac_manifest("kube-system")):
        cluster.server.put(document)
    after = connected.observe(passwords=True).passwords

    assert before is not None
    assert after is not None
    assert (before.readable, after.readable) == (False, True)
    assert after.reader == "system:serviceaccount:kube-system:calico-node"


def test_a_bgppeer_refers_to_its_key(cluster: Cluster, connected: calico.Calico) -> None:
    ref = live.SecretKeyRef(name=secret.SECRET_NAME, key="adc-1")
    spec = PeerSpec(peer_ip="10.0.0.100", as_number=500, password=ref)
    list(
        connected.apply(
            (PeerChange(action=Action.CREATE, name="adc-1", before=None, after=spec),),
            cluster="prod-1",
            state_hash="h",
        )
    )
    (peer,) = connected.observe().peers
    unset = spec.model_copy(update={"password": None})
    list(
        connected.apply(
            (
                PeerChange(
                    action=Action.UPDATE,
                    name="adc-1",
                    before=spec,
                    after=unset,
                    resource_version=peer.resource_version,
                ),
            ),
            cluster="prod-1",
            state_hash="h",
        )
    )

    assert peer.password == ref
    assert connected.observe().peers[0].password is None


def test_a_forbidden_write_names_the_request_and_the_roles(
    cluster: Cluster, connected: calico.Calico
) -> None:
    observed = connected.observe(passwords=True).passwords
    assert observed is not None
    cluster.server.inject_fault("create", "secrets", status=403)

    with pytest.raises(CalicoForbidden) as refused:
        list(
            connected.apply(
                (change(Action.CREATE, observed, data(adc_1="Hidden")),), cluster="prod-1", state_hash="h"
            )
        )

    message = str(refused.value)
    assert message.startswith("POST /api/v1/namespaces/kube-system/secrets: not allowed (403): ")
    assert message.endswith("apply the Roles `peeringd rbac` prints")
    assert "Hidden" not in message
