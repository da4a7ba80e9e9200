"""Adapters: one module per system peeringd talks to.

Each turns the outside world into core snapshots and core changes into calls,
and turns library exceptions into ``peeringd.errors`` at the edge. Text parsing
and command rendering stay pure, beside the driver that uses them.
"""
