"""A Kubernetes API server for tests and the embedded lab: Nodes and Calico custom resources.

It serves core v1 Nodes and the cluster-scoped kinds of a directory of CRD files over plain
HTTP with the semantics the official client relies on: discovery, resourceVersion and 409
conflicts, pruning, defaulting and validation from the CRD schema (CEL rules through
cel-python), label and field selectors, watches with 410 Gone, status subresources. Tests
also get fault injection, a request journal and direct access to the store. It listens on
its own socket and talks to nothing else; it is a lab, not a conformant server: no
authentication, no namespaces, no finalizers, no server-side apply, no version conversion.

Built on aiohttp, not kmock: kmock's KubernetesEmulator has no resourceVersion, conflicts,
selectors or schemas, and its KubernetesScaffold routes through a mock DSL whose filters and
error bodies our own store would bypass rather than extend; discovery here is ~100 lines.

Modules: `server` (HTTP, journal, lists and watches), `store` (objects, admission,
histories), `kinds` (served kinds and discovery), `schema` (CRD schemas and CEL),
`selectors`, `faults` (faults and hooks on requests), `errors` (the server's wording).
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
