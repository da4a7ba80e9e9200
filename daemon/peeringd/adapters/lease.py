"""The leader-election Lease (coordination.k8s.io/v1) through the Kubernetes API.

One Lease, read and written whole: every write carries the resourceVersion read (or is a
create), so the API server decides between two daemons writing at once, one of them
getting a 409 (``LeaseConflict``). Requests have short timeouts and are not retried by
urllib3: a renewal that hangs must not outlive the renew deadline, and the next retry
period tries again anyway. Client and transport exceptions become ``peeringd.errors``
types here.

The kubernetes client writes a MicroTime with ``isoformat()``, which leaves out a zero
fraction; the API server parses MicroTime with exactly six fractional digits and would
refuse that write, so a time on the whole second is written one microsecond later.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import kubernetes.client
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from peeringd.adapters import kubeclient
from peeringd.core import election
from peeringd.errors import LeaseConflict, LeaseError, LeaseUnavailable

__all__ = ["GROUP", "LeaseClient"]

GROUP = "coordination.k8s.io"

class LeaseClient:
    """One Lease, ``namespace/name``, through its own connection to the API server."""

    def __init__(
        self, api: kubernetes.client.ApiClient, namespace: str, name: str, *, timeout: tuple[float, float]
    ) -> None:
        self._api = api
        self._leases = kubernetes.client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self._timeout = timeout

    @classmethod
    def connect(
        cls,
        kubeconfig: Path | None,
        context: str | None,
        namespace: str,
        name: str,
        *,
        timeout: tuple[float, float] = (5.0, 5.0),
    ) -> LeaseClient:
        """Connect as kubectl would; ``timeout`` is (connect, read) seconds for each request."""
        return cls(kubeclient.connect(kubeconfig, context, retries=0), namespace, name, timeout=timeout)

    def close(self) -> None:
        self._api.close()

    @property
    def where(self) -> str:
        """``namespace/name``, as logs and messages name the Lease."""
        return f"{self.namespace}/{self.name}"

    def read(self) -> tuple[election.Record, str] | None:
        """The Lease's record and resourceVersion; None when there is no Lease."""
        try:
            lease = self._leases.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._translate(error, "get") from None
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable("get", error) from None
        return _record(lease.spec), _resource_version(lease)

    def create(self, record: election.Record) -> str:
        """Create the Lease holding ``record``; its resourceVersion. LeaseConflict when it exists."""
        body = self._body(record, None)
        return self._write(
            "create",
            lambda: self._leases.create_namespaced_lease(
                self.namespace, body, _request_timeout=self._timeout
            ),
        )

    def update(self, record: election.Record, resource_version: str) -> str:
        """Replace the Lease with ``record`` if it is still at ``resource_version`` (else
        LeaseConflict); the new resourceVersion."""
        body = self._body(record, resource_version)
        return self._write(
            "update",
            lambda: self._leases.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self._timeout
            ),
        )

    def _write(self, verb: str, request: Callable[[], kubernetes.client.V1Lease]) -> str:
        try:
            return _resource_version(request())
        except ApiException as error:
            raise self._translate(error, verb) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._unavailable(verb, error) from None

    def _body(self, record: election.Record, resource_version: str | None) -> kubernetes.client.V1Lease:
        return kubernetes.client.V1Lease(
            api_version=f"{GROUP}/v1",
            kind="Lease",
            metadata=kubernetes.client.V1ObjectMeta(
                name=self.name, namespace=self.namespace, resource_version=resource_version
            ),
            spec=kubernetes.client.V1LeaseSpec(
                holder_identity=record.holder,
                lease_duration_seconds=record.lease_duration_seconds,
                lease_transitions=record.transitions,
                acquire_time=_micro_time(record.acquire_time),
                renew_time=_micro_time(record.renew_time),
            ),
        )

    def _unavailable(self, verb: str, error: Exception) -> LeaseUnavailable:
        reason = getattr(error, "reason", None) or error
        return LeaseUnavailable(f"{verb} lease {self.where}: the API server did not answer: {reason}")

    def _translate(self, error: ApiException, verb: str) -> LeaseError:
        status = error.status or 0
        message = kubeclient.status_message(error)
        subject = f"lease {self.where}"
        if status in (401, 403):
            return LeaseError(
                f"not allowed to {verb} leases.{GROUP} in namespace {self.namespace}: add the rule"
                f' {{apiGroups: ["{GROUP}"], resources: ["leases"], verbs: ["{verb}"]}} to the Role'
                f" peeringd-leader in {self.namespace} (`peeringd rbac` prints it): {message}"
            )
        if status == 409 or (status == 404 and verb == "update"):
            return LeaseConflict(f"{verb} {subject}: another daemon wrote it first ({message})")
        if status == 404:
            return LeaseError(
                f"{verb} {subject}: {message}: create the namespace, or pass --lease-namespace"
            )
        if status == 429 or status >= 500:
            return LeaseUnavailable(f"{verb} {subject}: the API server failed ({status}): {message}")
        return LeaseError(f"{verb} {subject}: {status} {message}")


def _micro_time(moment: datetime.datetime | None) -> datetime.datetime | None:
    """A UTC time the client writes with six fractional digits (see the module's docstring)."""
    if moment is None:
        return None
    moment = moment.astimezone(datetime.UTC)
    return moment if moment.microsecond else moment.replace(microsecond=1)


def _record(spec: kubernetes.client.V1LeaseSpec | None) -> election.Record:
    if spec is None:
        return election.Record()
    return election.Record(
        holder=spec.holder_identity or "",
        lease_duration_seconds=spec.lease_duration_seconds or 0,
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=spec.lease_transitions or 0,
    )


def _resource_version(lease: kubernetes.client.V1Lease) -> str:
    assert lease.metadata is not None  # the API server always answers with metadata
    return str(lease.metadata.resource_version)
