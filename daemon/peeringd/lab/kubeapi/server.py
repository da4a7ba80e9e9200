"""The HTTP server: the request journal, faults and hooks, reads, writes, lists and watches."""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import copy
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from peeringd.lab.kubeapi import builtin, rbac, routes
from peeringd.lab.kubeapi.errors import (
    Json,
    KubeApiError,
    bad_request,
    method_not_allowed,
    not_found,
    path_not_found,
)
from peeringd.lab.kubeapi.faults import Fault, Hook, JournalEntry, injected
from peeringd.lab.kubeapi.kinds import BUNDLED_CRDS, CalicoApi, Kind, Registry, load_kinds
from peeringd.lab.kubeapi.selectors import selector
from peeringd.lab.kubeapi.store import Event, Expired, Store, Watcher

__all__ = ["WRITE_VERBS", "JournalEntry", "KubeApiServer"]

WRITE_VERBS: Final = ("create", "update", "patch", "delete", "deletecollection")

_log = logging.getLogger(__name__)


def _json_response(document: Json, status: int = 200, warnings: Iterable[str] = ()) -> web.Response:
    headers = [("Warning", f"299 - {json.dumps(warning)}") for warning in warnings]
    body = json.dumps(document, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _error_response(error: KubeApiError) -> web.Response:
    response = _json_response(error.status, error.code)
    response.headers.update(error.headers)
    return response


class KubeApiServer:
    """A Kubernetes API server on a background thread with its own asyncio loop.

    Use as a context manager (or `start()` / `stop()`); `url` and `write_kubeconfig()` tell
    clients where it is. `crds` is a directory of CRD YAML files (default: the bundled
    v3.32.1 set); `calico_api` picks which Calico groups are served: "v1"
    (crd.projectcalico.org/v1, a default install), "v3" (projectcalico.org/v3 native CRDs),
    "both" (the aggregated API server over the v1 CRDs; here the two groups are separate
    stores) or "none" (Calico not installed). CRDs of other groups are always served, and so
    are the built-in Nodes, Namespaces (default, kube-node-lease, kube-public and kube-system
    exist from the start), Secrets, coordination.k8s.io Leases, and RBAC's Roles, ClusterRoles
    and bindings, which answer SubjectAccessReviews (see `rbac`).
    `history_limit` bounds the watch history per kind (older watches get 410 Gone) and
    `journal_limit` the request journal (the oldest entries go first).

    The direct-access methods (`put`, `get`, `objects`, `delete`), the journal, `inject_fault`
    and `before_request` are thread-safe and may be used before `start()`.
    """

    def __init__(
        self,
        crds: Path | str = BUNDLED_CRDS,
        calico_api: CalicoApi = "v1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history_limit: int = 10_000,
        journal_limit: int = 100_000,
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self._registry = Registry([*builtin.KINDS, *rbac.KINDS, *load_kinds(Path(crds), calico_api)])
        self._store = Store(self._registry.kinds, history_limit)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._journal: collections.deque[JournalEntry] = collections.deque(maxlen=journal_limit)
        self._faults: list[Fault] = []
        self._hooks: list[Hook] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # Lifecycle

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind the socket and serve on a background thread; return once it accepts."""
        if self._thread is not None:
            raise RuntimeError("the server has already been started")
        sock = socket.create_server(
            (self._host, self._port),
            family=socket.AF_INET6 if ":" in self._host else socket.AF_INET,
        )
        self._port = sock.getsockname()[1]
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(sock, started), name="kubeapi", daemon=True)
        self._thread.start()
        started.result()

    def stop(self) -> None:
        """End every watch, close the socket and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`; a wildcard host is reached through the loopback."""
        if self._thread is None:
            raise RuntimeError("the server has not been started")
        wildcards = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 (mapped away)
        host = wildcards.get(self._host, self._host)
        return f"http://[{host}]:{self._port}" if ":" in host else f"http://{host}:{self._port}"

    def write_kubeconfig(self, path: Path, *, context: str = "peeringd-lab") -> Path:
        """Write a kubeconfig whose current context points at this server; return `path`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "preferences": {},
        }
        path = Path(path)
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        return path

    # Direct access (no HTTP; watches see these writes)

    def put(self, obj: Mapping[str, Any]) -> Json:
        """Create or replace `obj` (found by apiVersion and kind, and its metadata's namespace
        for a namespaced kind), status included.

        No resourceVersion check; schema pruning, defaults and validation still apply
        (KubeApiError 422 when invalid, 404 when its Namespace does not exist). Returns a copy
        of the stored object.
        """
        kind = self._registry.typed(obj.get("apiVersion", ""), obj.get("kind", ""))
        return copy.deepcopy(self._store.put(kind, copy.deepcopy(dict(obj))))

    def get(self, resource: str, name: str, namespace: str | None = None) -> Json | None:
        """A copy of the object, or None; `resource` is e.g. `bgppeers.crd.projectcalico.org`
        or `leases.coordination.k8s.io`; `namespace` is required for namespaced kinds."""
        kind = self._registry.named(resource)
        return copy.deepcopy(self._store.get(kind, name, namespace=_namespace_of(kind, namespace)))

    def objects(self, resource: str, namespace: str | None = None) -> list[Json]:
        """Copies of every object of `resource` (in `namespace`, or all), sorted by namespace and name."""
        kind = self._registry.named(resource)
        if namespace is not None and not kind.namespaced:
            raise ValueError(f"{resource} are not namespaced")
        return copy.deepcopy(self._store.snapshot(kind, namespace)[0])

    def delete(self, resource: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object (a Namespace with its objects); False when there was none."""
        kind = self._registry.named(resource)
        try:
            self._store.delete(kind, name, namespace=_namespace_of(kind, namespace))
        except KubeApiError:
            return False
        return True

    # Journal

    @property
    def journal(self) -> list[JournalEntry]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._journal)

    def count(self, *verbs: str, resource: str | None = None, group: str | None = None) -> int:
        """How many requests had one of `verbs` (all when none) on `resource` in `group`."""
        return sum(
            1
            for entry in self.journal
            if (not verbs or entry.verb in verbs)
            and resource in (None, entry.resource)
            and group in (None, entry.group)
        )

    def clear_journal(self) -> None:
        with self._lock:
            self._journal.clear()

    # Faults and hooks

    def inject_fault(
        self,
        verb: str,
        resource: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` matching requests wait `delay` seconds, then fail with `status`.

        `verb` is a Kubernetes verb (get, list, watch, create, update, patch, delete,
        deletecollection); `resource` a plural or `plural/status`; `name` narrows to one
        object. Without `status` the delayed request is then served normally. The error
        bodies are a real server's (401, 403 with RBAC wording for peeringd's service
        account, 404, 409, 429 with Retry-After, 500, 503, 504).
        """
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay or both")
        with self._lock:
            self._faults.append(Fault(verb, resource, name, times, status=status, delay=delay))

    def before_request(
        self,
        verb: str,
        resource: str,
        callback: Callable[[JournalEntry], None],
        *,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """Run `callback` on the server thread just before the next `times` matching requests.

        E.g. `put()` a newer version of an object before a client's update, which then gets
        409 Conflict. An exception in the callback answers the request with a 500. The
        callback blocks the server: it may use the direct-access methods, never HTTP.
        """
        with self._lock:
            self._hooks.append(Hook(verb, resource, name, times, callback=callback))

    # Serving

    def _serve(self, sock: socket.socket, started: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None  # set by start()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start_site(sock))
        except BaseException as error:
            sock.close()
            started.set_exception(error)
            self._loop.close()
            return
        started.set_result(None)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start_site(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        assert self._stopping is not None  # set by start()
        assert self._runner is not None
        self._stopping.set()
        self._store.end_watches()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = routes.target(self._registry, request.method, request.path, request.query)
        kind = target.kind
        resource = None
        if kind is not None:
            resource = f"{kind.plural}/{target.subresource}" if target.subresource else kind.plural
        entry = JournalEntry(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            verb=target.verb,
            group=kind.group if kind is not None else None,
            resource=resource,
            name=target.name,
            namespace=target.namespace,
            user_agent=request.headers.get("User-Agent"),
        )
        try:
            await self._before(entry, kind)
            if target.document is not None:
                return _json_response(target.document)
            if (request.method, request.path) == ("POST", rbac.REVIEW_PATH):
                review = rbac.review(await _json_object(request), self._objects)
                return _json_response(review, 201)
            if kind is None:
                raise path_not_found()
            if kind.namespaced and target.namespace is None and target.verb not in ("list", "watch"):
                raise method_not_allowed()  # across namespaces a namespaced kind is only read
            return await self._serve_resource(request, target, kind)
        except KubeApiError as error:
            return _error_response(error)
        except Exception as error:  # a lab server answers every request, even on its own bugs
            _log.exception("kubeapi: %s %s failed", request.method, request.path_qs)
            message = f"Internal error occurred: {error}"
            return _error_response(KubeApiError(500, "InternalError", message))

    def _objects(self, kind: Kind, namespace: str | None) -> list[Json]:
        return self._store.snapshot(kind, namespace)[0]

    async def _before(self, entry: JournalEntry, kind: Kind | None) -> None:
        """Journal the request, run its callbacks, then its fault if any."""
        with self._lock:
            self._journal.append(entry)
            hooks = [hook for hook in self._hooks if hook.matches(entry)]
            fault = next((fault for fault in self._faults if fault.matches(entry)), None)
            for rule in [*hooks, *([fault] if fault is not None else [])]:
                rule.remaining -= 1
            self._hooks = [hook for hook in self._hooks if hook.remaining > 0]
            self._faults = [fault for fault in self._faults if fault.remaining > 0]
        for hook in hooks:
            hook.callback(entry)
        if fault is not None:
            if fault.delay > 0:
                assert self._stopping is not None  # set by start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), fault.delay)
            if fault.status is not None:
                raise injected(fault.status, entry, kind)

    async def _serve_resource(
        self, request: web.Request, target: routes.Target, kind: Kind
    ) -> web.StreamResponse:
        query = request.query
        name, subresource = target.name, target.subresource
        namespace = target.namespace or ""
        dry_run = _dry_run(query.getall("dryRun", []))
        field_validation = query.get("fieldValidation", "Warn")
        if field_validation not in ("Ignore", "Warn", "Strict"):
            raise bad_request(
                f'Unsupported value: "{field_validation}": supported values: "Ignore", "Warn", "Strict"'
            )
        match target.verb:
            case "get":
                assert name is not None  # a get has a name
                obj = self._store.get(kind, name, namespace=namespace)
                if obj is None:
                    raise not_found(kind, name)
                return _json_response(obj)
            case "list":
                return _json_response(self._list(kind, query, target.namespace))
            case "watch":
                return await self._watch(request, kind, target.namespace)
            case "create":
                body = await _json_object(request)
                obj, warnings = self._store.create(
                    kind, body, dry_run=dry_run, field_validation=field_validation, namespace=namespace
                )
                return _json_response(obj, 201, warnings)
            case "update":
                assert name is not None  # an update has a name
                body = await _json_object(request)
                obj, warnings = self._store.update(
                    kind,
                    name,
                    body,
                    subresource=subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                    namespace=namespace,
                )
                return _json_response(obj, 200, warnings)
            case "patch":
                assert name is not None  # a patch has a name
                content_type = _patch_type(request.content_type, kind)
                patch = await _json_body(request)
                obj, warnings = self._store.patch(
                    kind,
                    name,
                    content_type,
                    patch,
                    subresource=subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                    namespace=namespace,
                )
                return _json_response(obj, 200, warnings)
            case "delete":
                assert name is not None  # a delete has a name
                options = await _json_object(request, required=False)
                dry_run = dry_run or _dry_run(options.get("dryRun") or [])
                deleted = self._store.delete(
                    kind,
                    name,
                    preconditions=options.get("preconditions"),
                    dry_run=dry_run,
                    namespace=namespace,
                )
                return _json_response(deleted if kind.is_custom else _success(kind, deleted))
            case "deletecollection":
                matches = selector(query)
                for obj in self._store.snapshot(kind, namespace)[0]:
                    if matches(obj) and not dry_run:
                        with contextlib.suppress(KubeApiError):  # deleted meanwhile
                            self._store.delete(kind, obj["metadata"]["name"], namespace=namespace)
                return _json_response(_success(kind, None))
        raise method_not_allowed()

    def _list(self, kind: Kind, query: Mapping[str, str], namespace: str | None) -> Json:
        matches = selector(query)
        objects, resource_version = self._store.snapshot(kind, namespace)
        items = [obj for obj in objects if matches(obj)]
        metadata: Json = {"resourceVersion": str(resource_version)}
        token = query.get("continue")
        if token:
            try:
                start = tuple(json.loads(base64.urlsafe_b64decode(token))["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
            items = [obj for obj in items if _key(obj) > start]
        limit_text = query.get("limit", "") or "0"
        if not limit_text.isdigit():
            raise bad_request(f'Invalid value: "{limit_text}": limit must be a number')
        limit = int(limit_text)
        if 0 < limit < len(items):
            last = _key(items[limit - 1])
            state = json.dumps({"rv": resource_version, "start": last}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(state).decode()
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": metadata,
            "items": items,
        }

    async def _watch(self, request: web.Request, kind: Kind, namespace: str | None) -> web.StreamResponse:
        query = request.query
        selected = selector(query)

        def matches(obj: Json) -> bool:
            return namespace in (None, obj["metadata"].get("namespace")) and selected(obj)

        since_text = query.get("resourceVersion", "")
        if since_text not in ("", "0") and not since_text.isdigit():
            raise bad_request(f'Invalid value: "{since_text}": resourceVersion must be an integer')
        since = int(since_text) if since_text not in ("", "0") else None
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        watcher = Watcher(loop)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            backlog = self._store.subscribe(kind, watcher, since)
        except Expired as expired:
            await response.prepare(request)
            gone = KubeApiError(410, "Expired", str(expired)).status
            await response.write(_event_line("ERROR", gone))
            return response
        try:
            await response.prepare(request)
            for past in backlog:
                await _send(response, past, matches)
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                try:
                    async with asyncio.timeout_at(deadline):  # None: no deadline
                        event = await watcher.queue.get()
                except TimeoutError:
                    break
                if event is None:
                    break
                await _send(response, event, matches)
        except ConnectionError:
            pass  # the client went away
        finally:
            self._store.unsubscribe(kind, watcher)
        return response


def _namespace_of(kind: Kind, namespace: str | None) -> str:
    """The store's namespace for a direct access: required for namespaced kinds, else none."""
    if kind.namespaced and not namespace:
        raise ValueError(f"{kind.qualified} are namespaced: name the namespace")
    if not kind.namespaced and namespace:
        raise ValueError(f"{kind.qualified} are not namespaced")
    return namespace or ""


def _key(obj: Json) -> tuple[str, str]:
    """Where an object sorts in a list, as etcd's keys do: by namespace, then name."""
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _event_line(event_type: str, obj: Json) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def _send(response: web.StreamResponse, event: Event, matches: Callable[[Json], bool]) -> None:
    """Send what this watcher sees of `event`: objects entering or leaving its selector
    appear as ADDED or DELETED, as they do on a real server."""
    now = matches(event.obj)
    if event.type == "DELETED":
        seen = "DELETED" if now else None
    else:
        before = event.old is not None and matches(event.old)
        seen = {(True, True): "MODIFIED", (True, False): "ADDED", (False, True): "DELETED"}.get((now, before))
    if seen is not None:
        await response.write(_event_line(seen, event.obj))


def _success(kind: Kind, deleted: Json | None) -> Json:
    details = kind.details(None if deleted is None else deleted["metadata"]["name"])
    if deleted is not None:
        details["uid"] = deleted["metadata"]["uid"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _dry_run(values: Iterable[str]) -> bool:
    values = list(values)
    if any(value != "All" for value in values):
        raise bad_request(f'Unsupported value: {json.dumps(values)}: supported values: "All"')
    return bool(values)


def _patch_type(content_type: str, kind: Kind) -> str:
    if content_type in ("application/merge-patch+json", "application/json-patch+json"):
        return content_type
    if content_type == "application/strategic-merge-patch+json" and not kind.is_custom:
        # Treated as a merge patch: lists are replaced, not merged by key.
        return "application/merge-patch+json"
    accepted = "application/json-patch+json, application/merge-patch+json"
    if not kind.is_custom:
        accepted += ", application/strategic-merge-patch+json"
    message = "the body of the request was in an unknown format - accepted media types include: " + accepted
    raise KubeApiError(415, "UnsupportedMediaType", message)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request(f"the request body is not JSON: {raw[:100]!r}") from None


async def _json_object(request: web.Request, *, required: bool = True) -> Json:
    if not required and not await request.read():
        return {}
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body
