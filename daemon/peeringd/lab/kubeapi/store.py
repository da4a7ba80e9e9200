"""The objects of every kind: one resourceVersion counter, admission, histories and watchers.

Objects are keyed by namespace and name (the namespace is "" for cluster-scoped kinds). A
namespaced object can be created only in an existing Namespace; deleting a Namespace deletes
its objects at once (no Terminating phase, no finalizers), and the immortal ones cannot be.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime
import json
import re
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import jsonpatch

from peeringd.lab.kubeapi import builtin
from peeringd.lab.kubeapi.errors import (
    MODIFIED,
    Json,
    KubeApiError,
    bad_request,
    cause,
    conflict,
    invalid,
    not_found,
    shown,
)
from peeringd.lab.kubeapi.kinds import Kind

__all__ = ["Event", "Expired", "Store", "Watcher"]

_OBJECT_META_FIELDS: Final = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_DNS1123_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN: Final = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
# Kubernetes' generated names end in five characters of this alphabet.
_NAME_SUFFIX_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_WRONG_NAMESPACE: Final = (
    "the namespace of the provided object does not match the namespace sent on the request"
)

# (namespace, name); the namespace is "" for cluster-scoped kinds.
Key = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Event:
    resource_version: int
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    obj: Json
    old: Json | None


@dataclasses.dataclass(eq=False)
class Watcher:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event | None] = dataclasses.field(default_factory=asyncio.Queue)

    def push(self, event: Event | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


class Expired(Exception):
    """The watch asked for events older than the history keeps."""


class _Collection:
    def __init__(self, history_limit: int) -> None:
        self.objects: dict[Key, Json] = {}
        self.history: collections.deque[Event] = collections.deque(maxlen=history_limit)
        self.compacted = 0  # the newest resourceVersion no longer in the history
        self.watchers: set[Watcher] = set()


def _key(obj: Json) -> Key:
    metadata = obj["metadata"]
    return metadata.get("namespace") or "", metadata["name"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(kind: Kind, obj: Json) -> Json:
    """What a change of bumps metadata.generation."""
    ignored = ("metadata", "status") if kind.has_status else ("metadata",)
    return {key: value for key, value in obj.items() if key not in ignored}


def _with_status(obj: Json, status_from: Json) -> Json:
    """A copy of `obj` with the status of `status_from`: what a status subresource keeps apart."""
    result = copy.deepcopy({key: value for key, value in obj.items() if key != "status"})
    if "status" in status_from:
        result["status"] = copy.deepcopy(status_from["status"])
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch; `target` is not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class Store:
    """The objects of every kind, one resourceVersion counter, histories and watchers.

    Thread-safe: HTTP handlers and direct callers both go through the lock. Stored objects
    are never mutated, so readers may serialise them outside the lock.
    """

    def __init__(self, kinds: Iterable[Kind], history_limit: int) -> None:
        self._lock = threading.RLock()
        self._resource_version = 1  # like etcd's: never 0, which watches read as "any"
        self._collections = {kind: _Collection(history_limit) for kind in kinds}
        if builtin.NAMESPACES in self._collections:
            for name in builtin.INITIAL_NAMESPACES:
                self.create(builtin.NAMESPACES, builtin.namespace_object(name))

    # Reads

    def get(self, kind: Kind, name: str, *, namespace: str = "") -> Json | None:
        with self._lock:
            return self._collections[kind].objects.get((namespace, name))

    def snapshot(self, kind: Kind, namespace: str | None = None) -> tuple[list[Json], int]:
        """Every object (of `namespace` when given) sorted by namespace and name, as etcd keys
        are, and the list's resourceVersion."""
        with self._lock:
            objects = self._collections[kind].objects
            keys = sorted(key for key in objects if namespace in (None, key[0]))
            return [objects[key] for key in keys], self._resource_version

    # Writes

    def create(
        self,
        kind: Kind,
        body: Json,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        keep_status: bool = False,
        namespace: str = "",
    ) -> tuple[Json, list[str]]:
        """Store a new object in `namespace` (of a namespaced kind); `body` becomes the store's.
        Returns it and the warnings."""
        with self._lock:
            objects = self._collections[kind].objects
            metadata = _metadata(kind, body, namespace)
            if metadata.get("resourceVersion"):
                message = "resourceVersion should not be set on objects to be created"
                raise KubeApiError(500, "InternalError", f"Internal error occurred: {message}")
            if kind.namespaced and self.get(builtin.NAMESPACES, namespace) is None:
                raise not_found(builtin.NAMESPACES, namespace)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = self._generated_name(objects, namespace, metadata["generateName"])
            if kind.has_status and kind.is_custom and not keep_status:
                body.pop("status", None)
            warnings = _admit(kind, body, None, field_validation)
            name = metadata["name"]
            if (namespace, name) in objects:
                message = f'{kind.qualified} "{name}" already exists'
                raise KubeApiError(409, "AlreadyExists", message, kind.details(name))
            metadata.pop("generation", None)
            metadata |= {"uid": str(uuid.uuid4()), "creationTimestamp": _now()}
            if kind.is_custom:
                metadata["generation"] = 1
            return (body if dry_run else self._commit(kind, "ADDED", body, None)), warnings

    def update(
        self,
        kind: Kind,
        name: str,
        body: Json,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        direct: bool = False,
        namespace: str = "",
    ) -> tuple[Json, list[str]]:
        """Replace an object; `direct` skips the resourceVersion check and status rules."""
        with self._lock:
            metadata = _metadata(kind, body, namespace)
            old = self._collections[kind].objects.get((namespace, name))
            if old is None:
                raise not_found(kind, name)
            metadata.setdefault("name", name)
            if metadata["name"] != name:
                raise bad_request(
                    f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})"
                )
            expected = metadata.get("resourceVersion")
            if expected and not direct and expected != old["metadata"]["resourceVersion"]:
                raise conflict(kind, name, MODIFIED)
            if subresource == "status":
                body = _with_status(old, body)
            elif kind.has_status and not direct:
                body = _with_status(body, old)
            warnings = _admit(kind, body, old, field_validation)
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                body["metadata"].pop(key, None)
                if key in old["metadata"]:
                    body["metadata"][key] = old["metadata"][key]
            if body == old:
                return old, warnings  # a no-op write stores nothing, like etcd's
            if kind.is_custom and _spec_part(kind, body) != _spec_part(kind, old):
                body["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
            return (body if dry_run else self._commit(kind, "MODIFIED", body, old)), warnings

    def patch(
        self,
        kind: Kind,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        namespace: str = "",
    ) -> tuple[Json, list[str]]:
        with self._lock:
            old = self._collections[kind].objects.get((namespace, name))
            if old is None:
                raise not_found(kind, name)
            if content_type == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise bad_request("a JSON patch must be a list of operations")
                try:
                    patched = jsonpatch.JsonPatch(patch).apply(old)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                    message = f"the server rejected our request due to an error in our request: {error}"
                    raise KubeApiError(422, "Invalid", message, kind.details(name)) from None
            else:
                if not isinstance(patch, dict):
                    raise bad_request("a merge patch must be a JSON object")
                patched = _merge_patch(old, patch)
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not a JSON object")
            return self.update(
                kind,
                name,
                patched,
                subresource=subresource,
                dry_run=dry_run,
                field_validation=field_validation,
                namespace=namespace,
            )

    def delete(
        self,
        kind: Kind,
        name: str,
        *,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
        namespace: str = "",
    ) -> Json:
        """Remove an object and return its last state, with the deletion's resourceVersion.

        A Namespace takes its objects with it, at once."""
        with self._lock:
            old = self._collections[kind].objects.get((namespace, name))
            if old is None:
                raise not_found(kind, name)
            if kind is builtin.NAMESPACES and name in builtin.IMMORTAL_NAMESPACES:
                message = f'namespaces "{name}" is forbidden: this namespace may not be deleted'
                raise KubeApiError(403, "Forbidden", message, kind.details(name))
            for key, label in (("resourceVersion", "ResourceVersion"), ("uid", "UID")):
                wanted = (preconditions or {}).get(key)
                if wanted and wanted != old["metadata"].get(key):
                    got = old["metadata"].get(key)
                    why = (
                        f"the {label} in the precondition ({wanted}) does not match the"
                        f" {label} in record ({got}). The object might have been modified"
                    )
                    raise conflict(kind, name, why)
            if dry_run:
                return old
            if kind is builtin.NAMESPACES:
                for other, collection in self._collections.items():
                    inside = sorted(k for k in collection.objects if other.namespaced and k[0] == name)
                    for doomed in inside:
                        self._commit(other, "DELETED", None, collection.objects[doomed])
            return self._commit(kind, "DELETED", None, old)

    def put(self, kind: Kind, obj: Json) -> Json:
        """Create or replace whatever the object's state, status included; no version check.

        The namespace of a namespaced kind's object is its metadata's (ValueError without one)."""
        with self._lock:
            metadata = obj.get("metadata") or {}
            name, namespace = metadata.get("name"), metadata.get("namespace") or ""
            if kind.namespaced and not namespace:
                raise ValueError(f"{kind.qualified} are namespaced: metadata.namespace is required")
            if name is not None and (namespace, name) in self._collections[kind].objects:
                return self.update(kind, name, obj, direct=True, namespace=namespace)[0]
            obj.get("metadata", {}).pop("resourceVersion", None)
            return self.create(kind, obj, keep_status=True, namespace=namespace)[0]

    # Watches

    def subscribe(self, kind: Kind, watcher: Watcher, since: int | None) -> list[Event]:
        """Register a watcher; return what it must see first.

        Without `since`, synthetic ADDED events for every object; otherwise the history
        after `since`, or Expired when the history no longer reaches back that far.
        """
        with self._lock:
            collection = self._collections[kind]
            if since is None:
                objects = collection.objects
                backlog = [
                    Event(int(objects[key]["metadata"]["resourceVersion"]), "ADDED", objects[key], None)
                    for key in sorted(objects)
                ]
            elif since < collection.compacted:
                raise Expired(f"too old resource version: {since} ({collection.compacted + 1})")
            else:
                backlog = [event for event in collection.history if event.resource_version > since]
            collection.watchers.add(watcher)
            return backlog

    def unsubscribe(self, kind: Kind, watcher: Watcher) -> None:
        with self._lock:
            self._collections[kind].watchers.discard(watcher)

    def compact(self) -> None:
        """Drop every kind's history up to the newest resourceVersion."""
        with self._lock:
            for collection in self._collections.values():
                collection.history.clear()
                collection.compacted = self._resource_version

    def end_watches(self) -> None:
        with self._lock:
            for collection in self._collections.values():
                for watcher in collection.watchers:
                    watcher.push(None)

    # Internals

    def _commit(
        self,
        kind: Kind,
        event_type: Literal["ADDED", "MODIFIED", "DELETED"],
        new: Json | None,
        old: Json | None,
    ) -> Json:
        self._resource_version += 1
        collection = self._collections[kind]
        version = str(self._resource_version)
        if new is None:
            assert old is not None  # a deletion has an old object
            stored = {**old, "metadata": {**old["metadata"], "resourceVersion": version}}
            del collection.objects[_key(old)]
        else:
            new["metadata"]["resourceVersion"] = version
            stored = collection.objects[_key(new)] = new
        event = Event(self._resource_version, event_type, stored, old)
        if len(collection.history) == collection.history.maxlen:
            collection.compacted = collection.history[0].resource_version
        collection.history.append(event)
        for watcher in collection.watchers:
            watcher.push(event)
        return stored

    @staticmethod
    def _generated_name(objects: Mapping[Key, Json], namespace: str, prefix: str) -> str:
        while True:
            name = prefix + "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            if (namespace, name) not in objects:
                return name


def _metadata(kind: Kind, body: Json, namespace: str) -> Json:
    """The body's metadata, its namespace set as the request's (cleared for cluster-scoped
    kinds, as the server does); a body naming another namespace is a 400."""
    metadata = body.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise bad_request("metadata must be an object")
    if not kind.namespaced:
        metadata.pop("namespace", None)
        return metadata
    if metadata.get("namespace") not in (None, "", namespace):
        raise bad_request(_WRONG_NAMESPACE)
    metadata["namespace"] = namespace
    return metadata


def _admit(kind: Kind, obj: Json, old: Json | None, field_validation: str) -> list[str]:
    """Check, prune, default and validate `obj` in place; return the warnings.

    Raises 400 for a wrong kind or (Strict) unknown fields and 422 for invalid objects.
    """
    api_version, kind_name = obj.get("apiVersion"), obj.get("kind")
    if kind.is_custom and (not api_version or not kind_name):
        raise bad_request(f"Object 'Kind' is missing in '{json.dumps(obj)[:200]}'")
    # The typed decoder of built-in kinds fills in a missing apiVersion and kind.
    if api_version not in (None, kind.api_version):
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API"
            f" version ({kind.api_version})"
        )
    if kind_name not in (None, kind.kind):
        raise bad_request(
            f"the kind in the data ({kind_name}) does not match the expected kind ({kind.kind})"
        )
    obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
    metadata: Json = obj["metadata"]
    unknown = [f"metadata.{key}" for key in metadata if key not in _OBJECT_META_FIELDS]
    for field in unknown:
        del metadata[field.removeprefix("metadata.")]
    if kind.schema is not None:
        unknown += kind.schema.prune_and_default(obj)
    elif kind.builtin is not None:
        unknown += kind.builtin.decode(obj, kind)
        kind.builtin.default(obj, old)
    if unknown and field_validation == "Strict":
        fields = ", ".join(f'unknown field "{field}"' for field in unknown)
        raise bad_request(f"strict decoding error: {fields}")
    name = metadata.get("name") or ""
    causes = _name_causes(name, label=kind.builtin is not None and kind.builtin.label_names)
    if kind.schema is not None:
        causes += kind.schema.validate(obj, old)
    elif kind.builtin is not None:
        causes += kind.builtin.validate(obj, old)
    if causes:
        raise invalid(kind, name, causes)
    # Type, then metadata, then the rest, as the server writes them: easier to read in the lab.
    rest = {key: obj.pop(key) for key in list(obj) if key not in ("apiVersion", "kind", "metadata")}
    obj.update({"metadata": obj.pop("metadata"), **rest})
    return [f'unknown field "{field}"' for field in unknown] if field_validation == "Warn" else []


def _name_causes(name: Any, *, label: bool = False) -> list[Json]:
    """What is wrong with a name: an RFC 1123 subdomain, or (`label`) an RFC 1123 label."""
    if not name:
        message = "Required value: name or generateName is required"
        return [cause("FieldValueRequired", "metadata.name", message)]
    limit = 63 if label else 253
    if not isinstance(name, str) or len(name) > limit:
        message = f"Invalid value: {shown(name)}: must be no more than {limit} characters"
        return [cause("FieldValueInvalid", "metadata.name", message)]
    if label and re.fullmatch(_DNS1123_LABEL, name) is None:
        message = (
            f"Invalid value: {shown(name)}: a lowercase RFC 1123 label must consist of lower case"
            " alphanumeric characters or '-', and must start and end with an alphanumeric"
            " character (e.g. 'my-name',  or '123-abc', regex used for validation is"
            f" '{_DNS1123_LABEL}')"
        )
        return [cause("FieldValueInvalid", "metadata.name", message)]
    if not label and re.fullmatch(_DNS1123_SUBDOMAIN, name) is None:
        message = (
            f"Invalid value: {shown(name)}: a lowercase RFC 1123 subdomain must consist of lower"
            " case alphanumeric characters, '-' or '.', and must start and end with an"
            " alphanumeric character (e.g. 'example.com', regex used for validation is"
            f" '{_DNS1123_SUBDOMAIN}')"
        )
        return [cause("FieldValueInvalid", "metadata.name", message)]
    return []
