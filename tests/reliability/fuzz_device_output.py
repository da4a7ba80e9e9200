"""Fuzz the parsers of device replies: the recorded NetScaler and FRR outputs in tests/fixtures
and generated ones, cut, paged, salted with prompts, terminal escapes and junk, re-ended
with CRLF, emptied.

Each mutated reply must read as exactly what the original reads as, or raise
OutputNotUnderstood (the driver then leaves the device alone for the pass); a harmless change
(CRLF, trailing blanks, an unknown stanza) must read as the original; a running config cut
before its `end` must be refused; nothing else may be raised, and no reply may take over 0.5 s.

Run from the repository root: ``.venv/bin/python -m tests.reliability.fuzz_device_output``
(``--seed N`` replays a run, ``--cases N``, default 10000). Exit 1 when a property broke.
"""

from __future__ import annotations

import sys

from tests.reliability import device_output, runner

__all__ = ["main"]


def main() -> int:
    arguments = runner.arguments("fuzz_device_output", __doc__)
    return runner.run(
        "fuzz_device_output",
        device_output.cases(),
        device_output.check,
        device_output.PROPERTIES,
        count=arguments.cases,
        seed=arguments.seed,
    )


if __name__ == "__main__":
    sys.exit(main())
