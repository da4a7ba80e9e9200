"""The desired-state file's model (``apiVersion: peeringd/v1``, ``kind: PeeringState``).

Structure and per-field rules live in the pydantic models, which also give the
JSON Schema; rules that span fields (unique names, unique peer IPs) are in
``problems``. Every token that may reach a device command is restricted here to
a charset that cannot break a command line: no spaces, quotes or control
characters anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from peeringd.core import asn, secret

__all__ = [
    "ADC",
    "API_VERSION",
    "KIND",
    "SSH",
    "BgpPassword",
    "Cluster",
    "MaxPaths",
    "NodeSelection",
    "PeeringState",
    "Policy",
    "Problem",
    "problems",
]

API_VERSION = "peeringd/v1"
KIND = "PeeringState"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = rf"(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})*"
_HOST_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*"
_USERNAME = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}"
# One label-selector requirement: key[op value] or key in (a,b) or !key.
_SELECTOR_KEY = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_SELECTOR_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SELECTOR_TERM = (
    rf"!?{_SELECTOR_KEY}"
    rf"|{_SELECTOR_KEY}\s*(==|=|!=)\s*{_SELECTOR_VALUE}"
    rf"|{_SELECTOR_KEY}\s+(in|notin)\s+\(\s*{_SELECTOR_VALUE}(\s*,\s*{_SELECTOR_VALUE})*\s*\)"
)
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def _matches(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _selector(value: str) -> str:
    terms = _split_selector(value)
    term = re.compile(_SELECTOR_TERM)
    for requirement in terms:
        if not term.fullmatch(requirement.strip()):
            raise ValueError(f"{requirement.strip()!r} is not a Kubernetes label selector term")
    return value


def _split_selector(value: str) -> list[str]:
    """Split on the commas between requirements, not those inside ``in (a,b)``."""
    terms: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(value):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(value[start:index])
            start = index + 1
    if value.strip():
        terms.append(value[start:])
    return terms


def _seconds(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value and (match := _DURATION.fullmatch(value)):
        hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"{value!r} is not a duration (write 60s, 5m or 1h30m)")
    if not 5 <= seconds <= 86400:
        raise ValueError(f"{value!r} is outside 5s..24h")
    return seconds


def _ipv4_network(value: object) -> object:
    # The standard library says why ("has host bits set"); pydantic would not.
    return ipaddress.IPv4Network(value) if isinstance(value, str) else value


def _ipv4_address(value: object) -> object:
    return ipaddress.IPv4Address(value) if isinstance(value, str) else value


IPv4Network = Annotated[
    ipaddress.IPv4Network,
    BeforeValidator(_ipv4_network),
    WithJsonSchema({"type": "string", "format": "ipv4network"}),
]
IPv4Address = Annotated[
    ipaddress.IPv4Address,
    BeforeValidator(_ipv4_address),
    WithJsonSchema({"type": "string", "format": "ipv4"}),
]
AsNumber = Annotated[
    int,
    BeforeValidator(asn.parse),
    WithJsonSchema(
        {
            "description": "AS number, plain (64512) or asdot (1.10); Calico stores at most 2147483647",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": asn.CALICO_MAX},
                {"type": "string", "pattern": r"^\d{1,10}$|^\d{1,5}\.\d{1,5}$"},
            ],
        }
    ),
]
Seconds = Annotated[
    int,
    BeforeValidator(_seconds),
    WithJsonSchema(
        {
            "description": "a duration: 60s, 5m, 1h30m, or whole seconds (5s..24h)",
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+s)?$"},
                {"type": "integer", "minimum": 5, "maximum": 86400},
            ],
        }
    ),
]
DnsLabel = Annotated[
    StrictStr,
    _matches(_DNS_LABEL, "a lower-case DNS label (a-z, 0-9, '-', at most 63)"),
    Field(json_schema_extra={"pattern": f"^{_DNS_LABEL}$"}),
]
DnsSubdomain = Annotated[
    StrictStr,
    _matches(_DNS_SUBDOMAIN, "a lower-case DNS name (a-z, 0-9, '-', '.', at most 253)"),
    Field(json_schema_extra={"pattern": f"^{_DNS_SUBDOMAIN}$"}),
]
Hostname = Annotated[
    StrictStr,
    _matches(_HOSTNAME, "a host name or IP address"),
    Field(json_schema_extra={"pattern": f"^{_HOSTNAME}$"}),
]
Username = Annotated[
    StrictStr,
    _matches(_USERNAME, "a user name (letters, digits, '.', '_', '-')"),
    Field(json_schema_extra={"pattern": f"^{_USERNAME}$"}),
]
Selector = Annotated[StrictStr, AfterValidator(_selector)]
# Booleans and integers are Strict: YAML already typed them, and "yes" or "22"
# in a string is more likely a mistake than a wish.
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
PathCount = Annotated[StrictInt, Field(ge=1, le=64)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
    )


class NodeSelection(_Model):
    """Which Kubernetes Nodes peer with the ADCs."""

    selector: Selector = Field("", description="Kubernetes label selector; empty selects every node")
    exclude: tuple[DnsSubdomain, ...] = Field((), description="node names never peered")


class Cluster(_Model):
    """The Calico side: the cluster's AS, its pod network and its nodes."""

    name: DnsLabel = Field(description="cluster name, written into ownership markers")
    pod_cidr: IPv4Network = Field(
        alias="podCIDR", description="the kubeadm --pod-network-cidr; must match a live IPPool"
    )
    as_number: AsNumber = Field(description="Calico's AS (BGPConfiguration default)")
    node_to_node_mesh: StrictBool | None = Field(
        None, description="Calico's node-to-node mesh; omitted leaves the live value alone"
    )
    nodes: NodeSelection = NodeSelection()
    kubeconfig_context: StrictStr | None = Field(
        None, description="kubeconfig context to use; default is the current context"
    )
    calico_namespace: DnsLabel | None = Field(
        None,
        description="where calico-node runs, and peeringd keeps the BGP password Secret; "
        "default: calico-system when it exists, else kube-system",
    )


class MaxPaths(_Model):
    """ECMP paths the ADC installs (``max-paths ebgp|ibgp <n>``)."""

    ebgp: PathCount | None = None
    ibgp: PathCount | None = None


def _relative_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """A path relative to the state file's folder, not to the working directory."""
    if value is not None and not str(value).isprintable():
        raise ValueError(f"{str(value)!r} holds a control character")
    base = (info.context or {}).get("base")
    return base / value if value is not None and base is not None else value


class SSH(_Model):
    """How peeringd reaches the device's CLI. Secrets are read from files, never written here."""

    host: Hostname
    port: Port = 22
    username: Username
    password_file: Path | None = Field(None, description="file holding the password")
    key_file: Path | None = Field(None, description="private key file")
    known_hosts_file: Path | None = Field(
        None,
        description="OpenSSH known_hosts that must hold the device's host key; default ~/.ssh/known_hosts",
    )

    _relative_to_state_file = field_validator("password_file", "key_file", "known_hosts_file")(_relative_path)


class BgpPassword(_Model):
    """The TCP MD5 password of every BGP session with this ADC, read from a file, never written here."""

    file: Path = Field(description="file holding the password (one line; at most 80 characters)")
    obfuscated: Literal["trust", "refuse"] = Field(
        "trust",
        description="a password the device shows obfuscated cannot be compared: trust takes it "
        "as the file's unless peeringd's Secret says the file changed; refuse plans an error",
    )
    # Not part of the file: the loader reads it from ``file``.
    value: SkipJsonSchema[secret.Password | None] = Field(None, exclude=True)

    _relative_to_state_file = field_validator("file")(_relative_path)

    @model_validator(mode="before")
    @classmethod
    def _never_the_secret_itself(cls, data: object) -> object:
        if isinstance(data, dict) and "value" in data and not isinstance(data["value"], secret.Password):
            raise ValueError("the password itself is never written here: name a file that holds it")
        return data


class ADC(_Model):
    """One ADC (NetScaler) the cluster's nodes peer with."""

    name: DnsSubdomain = Field(description="ADC name; also the name of its Calico BGPPeer")
    as_number: AsNumber = Field(description="the ADC's AS (router bgp)")
    peer_ip: IPv4Address = Field(
        alias="peerIP", description="the address the nodes peer with (the BGPPeer peerIP)"
    )
    platform: Literal["netscaler", "frr"] = Field(
        "netscaler", description="netscaler (Citrix ADC), or frr (FRRouting, SSH login into vtysh)"
    )
    max_paths: MaxPaths | None = Field(None, description="omitted leaves max-paths alone")
    install_routes: StrictBool = Field(
        True, description="netscaler: ns route-install bgp (frr installs BGP routes by itself)"
    )
    save_config: StrictBool = Field(True, description="persist the device config after a change")
    ssh: SSH
    bgp_password: BgpPassword | None = Field(None, description="omitted: the sessions have no password")


class Policy(_Model):
    """How boldly the daemon acts."""

    mode: Literal["enforce", "observe"] = Field(
        "enforce", description="observe reports drift and changes nothing"
    )
    interval: Seconds = Field(60, description="time between full reconcile passes")
    max_deletes: Annotated[StrictInt, Field(ge=0)] = Field(
        5, description="most deletions per pass and system; more is refused"
    )
    allow_empty: StrictBool = Field(
        False, description="allow a plan that removes every managed peer of a system"
    )
    allow_as_change: StrictBool = Field(
        False,
        alias="allowASChange",
        description="allow changing an AS number, which tears down every session",
    )
    adopt: StrictBool = Field(
        False,
        description="take hand-made objects that already agree with the file into ownership in place "
        "(a BGPPeer gets peeringd's label and annotations, an ADC neighbour its description)",
    )


class PeeringState(_Model):
    """The whole desired state of one cluster's peering with its ADCs."""

    api_version: Literal["peeringd/v1"]
    kind: Literal["PeeringState"]
    cluster: Cluster
    # Required, like cluster: a file cut off before its ADCs must not read as "no ADCs".
    adcs: tuple[ADC, ...] = Field(description="the ADCs and routers the nodes peer with; [] for none")
    policy: Policy = Policy()

    def adc(self, name: str) -> ADC | None:
        return next((adc for adc in self.adcs if adc.name == name), None)


class Problem(BaseModel):
    """A rule that spans fields was broken at ``path`` (keys and list indexes)."""

    model_config = ConfigDict(frozen=True)

    path: tuple[str | int, ...]
    message: str


def problems(state: PeeringState) -> tuple[Problem, ...]:
    """The cross-field problems of a structurally valid state: duplicates and clashes."""
    return tuple(_problems(state))


def _problems(state: PeeringState) -> Iterator[Problem]:
    names: dict[str, int] = {}
    peer_ips: dict[ipaddress.IPv4Address, int] = {}
    devices: dict[tuple[str, int], int] = {}
    for index, adc in enumerate(state.adcs):
        if (first := names.setdefault(adc.name, index)) != index:
            yield Problem(path=("adcs", index, "name"), message=f"{adc.name!r} is also adcs[{first}]")
        if (first := peer_ips.setdefault(adc.peer_ip, index)) != index:
            yield Problem(
                path=("adcs", index, "peerIP"),
                message=f"{adc.peer_ip} is also adcs[{first}]'s peerIP; Calico would keep only one",
            )
        device = (adc.ssh.host, adc.ssh.port)
        if (first := devices.setdefault(device, index)) != index:
            yield Problem(
                path=("adcs", index, "ssh", "host"),
                message=f"{adc.ssh.host}:{adc.ssh.port} is also adcs[{first}]'s device",
            )
        if adc.peer_ip in state.cluster.pod_cidr:
            yield Problem(
                path=("adcs", index, "peerIP"),
                message=f"{adc.peer_ip} lies inside the pod network {state.cluster.pod_cidr}",
            )
        if adc.platform == "frr" and "install_routes" in adc.model_fields_set:
            yield Problem(
                path=("adcs", index, "installRoutes"),
                message="applies to netscaler only: FRR installs BGP routes by itself",
            )
        if adc.ssh.password_file is None and adc.ssh.key_file is None:
            yield Problem(path=("adcs", index, "ssh"), message="needs passwordFile or keyFile")
