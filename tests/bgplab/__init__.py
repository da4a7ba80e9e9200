"""A real-BGP lab for end-to-end tests: FRR, Calico-style BIRD2 nodes and SSH, all in namespaces.

The lab builds one network namespace per host (an FRR router and N Kubernetes "nodes") on a
bridge that lives in its own "switch" namespace, starts FRR (zebra + bgpd) and an sshd whose
sessions land in that FRR's vtysh in the router namespace, runs BIRD2 with configs rendered the
way calico-node renders them in each node namespace, and forwards 127.0.0.1:<port> in the root
namespace to the router's sshd, so a daemon in the root namespace can drive the router.

What this package may not do: add addresses, routes or interfaces to the root namespace (it
only listens on 127.0.0.1 there), use addresses outside 10.0.0.0/8 (nor 10.102.33.0/24, the
seed's real network), touch namespaces or processes it did not create, or change /etc: the lab
SSH login exists only inside sshd's private mount namespace. Everything it starts is stopped,
and everything it creates is removed, when the lab closes.

Needs root and the Debian packages frr, bird2, openssh-server and iproute2;
`lab.missing_prerequisites()` says what is missing so tests can skip.
"""
