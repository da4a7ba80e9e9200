"""A Kubernetes API server for tests and the embedded lab: Nodes, Namespaces, Secrets, Leases and
Calico custom resources.

It serves the built-in kinds peeringd meets (core v1 Nodes, Namespaces and Secrets,
coordination.k8s.io/v1 Leases) and the kinds of a directory of CRD files, cluster-scoped or
namespaced, over plain HTTP with the semantics the official client relies on: discovery,
namespaces (/api/v1/namespaces/NS/..., the 404 for a missing Namespace, lists and watches in
one namespace or across all), resourceVersion and 409 conflicts, pruning, defaulting and
validation from the CRD schema (CEL rules through cel-python) or by hand for built-in kinds,
label and field selectors, watches with 410 Gone, status subresources. Tests also get fault
injection, a request journal (with each request's namespace and User-Agent) and direct access
to the store. It listens on its own socket and talks to nothing else; it is a lab, not a
conformant server: no authentication, no finalizers (a deleted Namespace takes its objects at
once), no server-side apply, no version conversion.

Built on aiohttp, not kmock: kmock's KubernetesEmulator has no resourceVersion, conflicts,
selectors or schemas, and its KubernetesScaffold routes through a mock DSL whose filters and
error bodies our own store would bypass rather than extend; discovery here is ~100 lines.

Modules: `server` (HTTP, journal, lists and watches), `routes` (what a URL addresses),
`store` (objects by namespace and name, admission, histories), `kinds` (what a kind is, CRD
kinds, discovery), `builtin` (the built-in kinds and their hand-written admission), `schema`
(CRD schemas and CEL), `selectors`, `faults` (faults and hooks on requests), `errors` (the
server's wording).
"""

from peeringd.lab.kubeapi.errors import KubeApiError
from peeringd.lab.kubeapi.kinds import BUNDLED_CRDS, CalicoApi
from peeringd.lab.kubeapi.server import WRITE_VERBS, JournalEntry, KubeApiServer

__all__ = [
    "BUNDLED_CRDS",
    "WRITE_VERBS",
    "CalicoApi",
    "JournalEntry",
    "KubeApiError",
    "KubeApiServer",
]
