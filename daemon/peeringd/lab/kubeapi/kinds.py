"""What a served kind is, the kinds of a directory of CRDs, and the discovery documents."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from ruamel.yaml import YAML

from peeringd.lab.kubeapi.errors import Json
from peeringd.lab.kubeapi.schema import Schema

if TYPE_CHECKING:
    from peeringd.lab.kubeapi.builtin import Builtin

__all__ = ["BUNDLED_CRDS", "CalicoApi", "Kind", "Registry", "load_kinds"]

CalicoApi = Literal["v1", "v3", "both", "none"]

# The unmodified upstream CRDs (see crds/README.md); the v3.31.7 set is in a sub-folder.
BUNDLED_CRDS: Final = Path(__file__).parent.parent / "crds"

_CALICO_GROUPS: Final[Mapping[str, frozenset[str]]] = {
    "v1": frozenset({"crd.projectcalico.org"}),
    "v3": frozenset({"projectcalico.org"}),
    "both": frozenset({"crd.projectcalico.org", "projectcalico.org"}),
    "none": frozenset(),
}
_ALL_CALICO_GROUPS: Final = _CALICO_GROUPS["both"]
_VERBS: Final = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
_SERVER_VERSION: Final = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Kind:
    """One served resource; identity-compared, so it can key the store."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...]
    has_status: bool
    schema: Schema | None  # a CRD's; None for the built-in kinds
    namespaced: bool = False
    builtin: Builtin | None = None  # a built-in kind's hand-written admission (Node has none)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`bgppeers.crd.projectcalico.org`, or `nodes` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def is_custom(self) -> bool:
        return self.schema is not None

    def details(self, name: str | None) -> Json:
        details: Json = {"name": name} if name is not None else {}
        if self.group:
            details["group"] = self.group
        details["kind"] = self.plural
        return details

    def api_resources(self) -> list[Json]:
        resource: Json = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(_VERBS),
        }
        if self.short_names:
            resource["shortNames"] = list(self.short_names)
        resources = [resource]
        if self.has_status:
            status_verbs = ["get", "patch", "update"]
            resources.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": status_verbs,
                }
            )
        return resources


def load_kinds(directory: Path, calico_api: CalicoApi) -> list[Kind]:
    """The served versions of the CRDs in `directory` (not recursive), cluster-scoped or namespaced;
    of Calico's groups only those `calico_api` names."""
    if calico_api not in _CALICO_GROUPS:
        raise ValueError(f"calico_api must be one of {sorted(_CALICO_GROUPS)}, not {calico_api!r}")
    wanted = _CALICO_GROUPS[calico_api]
    yaml = YAML(typ="safe", pure=True)
    kinds: list[Kind] = []
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.load(path)
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        group = spec["group"]
        if group in _ALL_CALICO_GROUPS and group not in wanted:
            continue
        if spec.get("scope") not in ("Cluster", "Namespaced"):
            raise ValueError(f"{path}: spec.scope must be Cluster or Namespaced")
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            kinds.append(
                Kind(
                    group=group,
                    version=version["name"],
                    plural=names["plural"],
                    singular=names.get("singular", names["kind"].lower()),
                    kind=names["kind"],
                    short_names=tuple(names.get("shortNames", ())),
                    has_status="status" in (version.get("subresources") or {}),
                    schema=Schema(version["schema"]["openAPIV3Schema"]),
                    namespaced=spec["scope"] == "Namespaced",
                )
            )
    missing = wanted - {kind.group for kind in kinds}
    if missing:
        raise ValueError(f"{directory} has no CRDs of {', '.join(sorted(missing))}")
    return kinds


class Registry:
    """The served kinds, found by URL, by `plural.group` and by apiVersion and kind."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds = list(kinds)
        self._by_url = {(k.group, k.version, k.plural): k for k in self.kinds}
        self._by_name = {k.qualified: k for k in self.kinds}
        self._by_type = {(k.api_version, k.kind): k for k in self.kinds}
        self.groups: dict[str, list[str]] = {}
        for kind in self.kinds:
            versions = self.groups.setdefault(kind.group, [])
            if kind.version not in versions:
                versions.append(kind.version)

    def at(self, group: str, version: str, plural: str) -> Kind | None:
        return self._by_url.get((group, version, plural))

    def named(self, resource: str) -> Kind:
        try:
            return self._by_name[resource]
        except KeyError:
            served = ", ".join(sorted(self._by_name))
            raise ValueError(f"{resource!r} is not served; served: {served}") from None

    def typed(self, api_version: str, kind: str) -> Kind:
        try:
            return self._by_type[(api_version, kind)]
        except KeyError:
            raise ValueError(f"{api_version} {kind} is not served") from None

    def document(self, parts: list[str]) -> Json | None:
        """The discovery document at a path, or None when the path is not discovery."""
        match parts:
            case []:
                paths = ["/api", "/api/v1", "/apis", "/version"]
                for group, versions in self.groups.items():
                    if group:
                        paths += [f"/apis/{group}"] + [f"/apis/{group}/{v}" for v in versions]
                return {"paths": sorted(paths)}
            case ["version"]:
                return dict(_SERVER_VERSION)
            case ["api"]:
                address = {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                return {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [address],
                }
            case ["api", "v1"]:
                return self._resource_list("", "v1")
            case ["apis"]:
                groups = [self._group(g) for g in self.groups if g]
                return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            case ["apis", group] if group in self.groups and group:
                return {"kind": "APIGroup", "apiVersion": "v1", **self._group(group)}
            case ["apis", group, version] if version in self.groups.get(group, ()) and group:
                return self._resource_list(group, version)
        return None

    def _group(self, group: str) -> Json:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.groups[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _resource_list(self, group: str, version: str) -> Json:
        kinds = [k for k in self.kinds if (k.group, k.version) == (group, version)]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [resource for kind in kinds for resource in kind.api_resources()],
        }
