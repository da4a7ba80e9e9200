"""peeringd keeps BGP peering between a Calico cluster and its ADCs true to one file.

Layers, each importing only the ones below it (import-linter checks this):
``peeringd.lab`` (stand-ins for a cluster and ADCs; the ``lab`` extra) >
``peeringd.runtime`` (CLI, daemon) > ``peeringd.adapters`` (Kubernetes API,
devices, the state file) > ``peeringd.core`` (pure data and pure functions).
"""

__version__ = "0.1.0.dev0"
