"""The pure core: data and pure functions only.

No I/O, no clocks, no network or YAML libraries here: the desired-state model,
the live snapshots, ``plan.plan(desired, live)`` and the guards.
"""
