"""How peeringd reaches the Kubernetes API server, and how it names itself there.

A connection is found as kubectl finds one. Every request carries a User-Agent naming the
peeringd version and this process's identity (the one it holds the leader-election Lease
under), so the API server's audit log tells two daemons apart.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
from importlib import metadata
from pathlib import Path

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from peeringd.errors import KubeconfigError

__all__ = ["connect", "identity", "status_message", "user_agent"]


@functools.cache
def identity() -> str:
    """This process as ``HOST_PID_RANDOM``: the host and pid say where it runs, six random hex
    digits keep two containers with the same hostname and pid apart. Fixed for the process."""
    return f"{socket.gethostname()}_{os.getpid()}_{secrets.token_hex(3)}"


@functools.cache
def user_agent() -> str:
    """``peeringd/VERSION (IDENTITY)``."""
    return f"peeringd/{metadata.version('peeringd')} ({identity()})"


def connect(
    kubeconfig: Path | None = None, context: str | None = None, *, retries: int | None = None
) -> kubernetes.client.ApiClient:
    """Connect as kubectl would: ``kubeconfig``, else $KUBECONFIG, else ~/.kube/config,
    else the in-cluster service account. The home directory is looked for only when
    nothing else names a kubeconfig (a systemd DynamicUser may have none).

    ``retries`` overrides urllib3's (three retries of an idempotent request that failed
    to connect or timed out)."""
    configuration = kubernetes.client.Configuration()
    named = kubeconfig or os.environ.get("KUBECONFIG")
    home_config = None if named else _home_kubeconfig()
    in_cluster = (
        not named
        and (home_config is None or not home_config.exists())
        and "KUBERNETES_SERVICE_HOST" in os.environ
    )
    if not named and home_config is None and not in_cluster:
        raise KubeconfigError(
            "no kubeconfig: pass --kubeconfig or set $KUBECONFIG "
            "(there is no home directory to find ~/.kube/config in)"
        )
    try:
        if in_cluster:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            # With no file named, the client merges $KUBECONFIG's files as kubectl does.
            kubernetes.config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
            )
    except (ConfigException, OSError) as error:
        where = "the in-cluster service account" if in_cluster else f"kubeconfig {named or home_config}"
        raise KubeconfigError(f"cannot use {where}: {error}") from None
    if retries is not None:
        configuration.retries = retries
    api = kubernetes.client.ApiClient(configuration)
    api.user_agent = user_agent()
    return api


def _home_kubeconfig() -> Path | None:
    """~/.kube/config, or None when the process has no home directory."""
    try:
        return Path.home() / ".kube" / "config"
    except RuntimeError:
        return None


def status_message(error: ApiException) -> str:
    """The message of the API server's Status in ``error``, else its HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        return str(error.reason or "")
    return str(body.get("message") or error.reason or "") if isinstance(body, dict) else str(body)
