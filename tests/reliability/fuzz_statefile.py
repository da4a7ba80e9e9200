"""Fuzz the state file loader: generated valid files, written in many YAML styles, then cut,
spliced, re-encoded and salted with every YAML feature a state file refuses.

Each file must load (as exactly what was written, when unmutated) or be refused with one-line
problems naming the file, a line and a column inside it; nothing else may be raised, and no
file may take over 0.5 s. Generated files stay under 64 KiB (but for the over-1-MiB ones,
refused unread); the time of the largest file allowed is printed beside, not judged.

Run from the repository root: ``.venv/bin/python -m tests.reliability.fuzz_statefile``
(``--seed N`` replays a run, ``--cases N``, default 10000). Exit 1 when a property broke.
"""

from __future__ import annotations

import sys
import time

from peeringd.adapters import statefile
from tests.reliability import runner, statefiles

__all__ = ["main"]

ADC = """\
  - name: adc-{index}
    asNumber: 500
    peerIP: 10.{high}.{low}.1
    platform: netscaler
    maxPaths: {{ebgp: 8, ibgp: 8}}
    ssh:
      host: 10.{high}.{low}.1
      port: 22
      username: nsroot
      passwordFile: /etc/peeringd/adc-{index}.password
"""


def largest_file() -> bytes:
    """A valid file as close to the size limit as whole ADC entries allow."""
    head = "apiVersion: peeringd/v1\nkind: PeeringState\n"
    head += "cluster: {name: big, podCIDR: 192.168.0.0/16, asNumber: 64512}\nadcs:\n"
    entries: list[str] = []
    size = len(head)
    while True:
        index = len(entries)
        entry = ADC.format(index=index, high=index // 250, low=index % 250)
        if size + len(entry) > statefile.MAX_BYTES:
            return (head + "".join(entries)).encode()
        entries.append(entry)
        size += len(entry)


def main() -> int:
    arguments = runner.arguments("fuzz_statefile", __doc__)
    code = runner.run(
        "fuzz_statefile",
        statefiles.cases(),
        statefiles.check,
        statefiles.PROPERTIES,
        count=arguments.cases,
        seed=arguments.seed,
    )
    content = largest_file()
    started = time.perf_counter()
    loaded = statefile.parse(content, statefiles.FILE)
    seconds = time.perf_counter() - started
    print(
        f"\nthe largest file allowed ({len(content)} bytes, {len(loaded.state.adcs)} ADCs) "
        f"loads in {seconds * 1000:.0f} ms (not judged)"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
