"""Fault schedules for the campaign: one seed makes one schedule, and one schedule runs the
same faults and changes every time (``run(seed)``).

A schedule starts a fresh lab (the API server with three Nodes, three simulated ADCs), gives
it objects peeringd does not own (a BGPPeer and, on every ADC, a neighbour with a description
of its own and one without), converges it with the first ADCs of the file, then makes one
desired change and one fault at the same time. Passes run while the fault lasts; once it is
cleared, the next three passes must converge. Faults of the process (signals, the state file
replaced, the node watch expiring, the API server down for a while) run ``peeringd run``
itself; the others run the pass in this process, where a device is slow after 1 s and the
API server after 0.5 s (the daemon's are 30 s: the property does not depend on them).

What must hold, checked after every schedule (``Outcome.broken`` names what did not):
converged within 3 passes of the fault clearing; no unowned object changed; no crash (no
exception from a pass, the daemon alive or, after SIGTERM, exited 0); every save a whole
configuration (each ADC's neighbours those of the Nodes before or after the change).
"""

from __future__ import annotations

import random
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from peeringd.adapters import kubeclient, statefile
from peeringd.adapters.calico import Calico
from peeringd.adapters.netscaler import NetScaler
from peeringd.lab.kubeapi import KubeApiServer
from peeringd.lab.nssim import DeviceConfig, NetScalerSimulator, write_known_hosts
from peeringd.lab.nssim.faults import DropHow
from peeringd.runtime import reconcile
from tests.bgplab.poll import until
from tests.conftest import CRD_SOURCE, node_object, pool_object
from tests.runtime.daemon_harness import DaemonProcess

__all__ = ["DAEMON_FAULTS", "FAULTS", "PROPERTIES", "Outcome", "run"]

CLUSTER = "prod-1"
GROUP = "crd.projectcalico.org/v1"
PEERS = "bgppeers.crd.projectcalico.org"
NODES = {"node-1": "10.0.0.11", "node-2": "10.0.0.12", "node-3": "10.0.0.13"}
JOINING = ("node-4", "10.0.0.14")
ADCS = ("adc-1", "adc-2", "adc-3")
# Hand-made objects: a neighbour with a description of its own, one without, a BGPPeer.
HAND_MADE_ZEBOS = """\
router bgp 500
 neighbor 10.0.0.200 remote-as 65200
 neighbor 10.0.0.200 description by-hand
 neighbor 10.0.0.201 remote-as 65201
!"""
HAND_MADE_ADDRESSES = ("10.0.0.200", "10.0.0.201")
HAND_MADE_PEER = {
    "apiVersion": GROUP,
    "kind": "BGPPeer",
    "metadata": {"name": "by-hand", "labels": {"team": "net"}},
    "spec": {"peerIP": "10.0.0.250", "asNumber": 65250},
}
DEVICE_TIMEOUT = 1.0
CALICO_TIMEOUT = (1.0, 0.5)
PASSES_TO_CONVERGE = 3
STATE = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster: {{name: prod-1, podCIDR: 192.168.0.0/16, asNumber: 64512}}
adcs:
{adcs}
policy: {{interval: 1h}}
"""
ADC = """\
  - name: {name}
    asNumber: 500
    peerIP: 10.0.0.{octet}
    maxPaths: {{ebgp: {ebgp}, ibgp: 8}}
    ssh: {{host: 127.0.0.1, port: {port}, username: nsroot, passwordFile: {folder}/password, knownHostsFile: {folder}/known_hosts}}
"""
CHANGES = ("node joins", "node leaves", "ADC added", "ADC removed", "maxPaths changed")
FAULTS = (
    "SSH dropped after N lines",
    "a line rejected",
    "slow device",
    "ADC reboot losing unsaved config",
    "API server 5xx",
    "API server 409",
    "API server timeouts",
)
REJECTED = (
    r"neighbor .* remote-as .*",
    r"neighbor .* description .*",
    r"max-paths .*",
    r"no neighbor .*",
    r"configure terminal",
)
DROPS: tuple[DropHow, ...] = ("channel", "transport")
SLOW = (r"show running-config", r"neighbor .*", r"configure terminal", r"end", None)
REQUESTS = (
    ("list", "nodes"),
    ("list", "bgppeers"),
    ("get", "bgpconfigurations"),
    ("create", "bgppeers"),
    ("patch", "bgppeers"),
    ("delete", "bgppeers"),
    ("list", "ippools"),
)
DAEMON_FAULTS = (
    "API server down for a while",
    "watch expired (410)",
    "state file replaced mid-pass",
    "SIGTERM mid-pass",
    "SIGHUP storm",
)
PROPERTIES = [
    f"converged within {PASSES_TO_CONVERGE} passes after the fault cleared",
    "no unowned object changed (two hand-made neighbours per ADC, a hand-made BGPPeer)",
    "no crash: no exception out of a pass; the daemon alive (no traceback in its log, the node "
    "watch included), or exited 0 after SIGTERM",
    "no saved half-done configuration: every save held the neighbours of the Nodes before "
    "or after the change, whole",
]


@dataclass
class Outcome:
    """What one schedule tried, what it saw, and which properties broke."""

    seed: int
    fault: str
    change: str
    detail: str = ""
    passes_to_converge: int | None = None
    saves: int = 0
    unmarked: int = 0  # neighbours left without peeringd's description (the fault cut it off)
    broken: list[str] = field(default_factory=list)


@dataclass
class _Lab:
    """One schedule's API server, ADCs and files."""

    folder: Path
    server: KubeApiServer
    adcs: dict[str, NetScalerSimulator]
    kubeconfig: Path
    state_file: Path
    saves: dict[str, list[DeviceConfig]] = field(default_factory=dict)
    systems: reconcile.Systems | None = None  # the in-process passes' connections

    def close_systems(self) -> None:
        if self.systems is not None:
            self.systems.close()
            self.systems = None

    def write_state(self, names: tuple[str, ...], ebgp: int = 8) -> None:
        body = "".join(
            ADC.format(
                name=name,
                octet=100 + ADCS.index(name),
                port=self.adcs[name].port,
                folder=self.folder,
                ebgp=ebgp,
            )
            for name in names
        )
        scratch = self.folder / "peering.yaml.new"
        scratch.write_text(STATE.format(adcs=body))
        scratch.replace(self.state_file)  # as editors and git do: the file is replaced whole

    def nodes(self) -> dict[str, str]:
        return {
            item["metadata"]["name"]: item["status"]["addresses"][0]["address"]
            for item in self.server.objects("nodes")
        }


@contextmanager
def _lab() -> Iterator[_Lab]:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="campaign-")))
        server = stack.enter_context(KubeApiServer(CRD_SOURCE, "v1"))
        server.put(pool_object(GROUP))
        for name, address in NODES.items():
            server.put(node_object(name, address))
        server.put(HAND_MADE_PEER)
        adcs = {name: stack.enter_context(NetScalerSimulator()) for name in ADCS}
        for simulator in adcs.values():
            simulator.set_feature("BGP", True)
            simulator.load_zebos(HAND_MADE_ZEBOS)
            simulator.save()
        (folder / "password").write_text("nsroot\n")
        write_known_hosts(folder / "known_hosts", adcs.values())
        lab = _Lab(
            folder, server, adcs, server.write_kubeconfig(folder / "kubeconfig"), folder / "peering.yaml"
        )
        for name, simulator in adcs.items():
            lab.saves[name] = []
            simulator.on_save(lab.saves[name].append)
        try:
            yield lab
        finally:
            lab.close_systems()


def _systems(lab: _Lab, loaded: statefile.LoadedState) -> reconcile.Systems:
    calico = Calico(kubeclient.connect(lab.kubeconfig), timeout=CALICO_TIMEOUT)
    devices = {adc.name: NetScaler(adc, timeout=DEVICE_TIMEOUT) for adc in loaded.state.adcs}
    return reconcile.Systems(calico=calico, devices=devices)


def _one_pass(lab: _Lab) -> reconcile.Report:
    """A pass on fresh connections when the file's ADCs changed, as the daemon rebuilds them."""
    loaded = statefile.load(lab.state_file)
    if lab.systems is None or tuple(lab.systems.devices) != tuple(adc.name for adc in loaded.state.adcs):
        lab.close_systems()
        lab.systems = _systems(lab, loaded)
    return reconcile.reconcile(loaded, lab.systems)


def _hand_made(lab: _Lab) -> object:
    """Every unowned object as it stands now."""
    devices = {}
    for name, simulator in lab.adcs.items():
        router = simulator.running().zebos.bgp
        kept = {} if router is None else {a: router.neighbors.get(a) for a in HAND_MADE_ADDRESSES}
        devices[name] = {a: None if n is None else (n.remote_as, n.description) for a, n in kept.items()}
    peer = lab.server.get(PEERS, "by-hand")
    return devices, None if peer is None else (peer["metadata"].get("labels"), peer["spec"])


@dataclass(frozen=True)
class _Desired:
    """A desired change: what it is, the file's ADCs before and after it, maxPaths ebgp after."""

    change: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    ebgp: int

    @classmethod
    def draw(cls, rng: random.Random) -> _Desired:
        change = rng.choice(CHANGES)
        before = ADCS if change == "ADC removed" else ADCS[:2]
        after = {"ADC added": ADCS, "ADC removed": ADCS[:2]}.get(change, before)
        return cls(change, before, after, 4 if change == "maxPaths changed" else 8)

    def make(self, lab: _Lab) -> None:
        if self.change == "node joins":
            lab.server.put(node_object(*JOINING))
        elif self.change == "node leaves":
            lab.server.delete("nodes", "node-3")
        else:
            lab.write_state(self.after, self.ebgp)


def run(seed: int, outage: float = 3.0) -> Outcome:
    """Run the schedule of ``seed``; its outcome names any broken property. ``outage`` is how
    long the API server stays down in that fault, in seconds."""
    rng = random.Random(seed)  # noqa: S311 - a replayable schedule, not a secret
    fault = rng.choice(FAULTS + DAEMON_FAULTS)
    desired = _Desired.draw(rng)
    outcome = Outcome(seed, fault, desired.change)
    with _lab() as lab:
        lab.write_state(desired.before)
        schedule = _Schedule(rng, lab, outcome, desired, outage)
        try:
            if fault in DAEMON_FAULTS:
                schedule.in_the_daemon()
            else:
                schedule.in_passes()
        except Exception as error:  # a crash is a broken property, reported with its seed
            outcome.broken.append(f"crashed: {type(error).__name__}: {error}")
    return outcome


@dataclass
class _Schedule:
    rng: random.Random
    lab: _Lab
    outcome: Outcome
    desired: _Desired
    outage: float

    def in_passes(self) -> None:
        """The fault and the change, passes while the fault lasts, then passes until converged."""
        hand_made, nodes_before = self._prepare()
        target = self.lab.adcs[self.rng.choice(ADCS[:2])]
        self.outcome.detail = self._arm(target)
        self.desired.make(self.lab)
        for _ in range(self.rng.randrange(1, 3)):
            _one_pass(self.lab)
        if self.outcome.fault == "ADC reboot losing unsaved config":
            target.reboot()
        target.clear_faults()
        self.lab.server.clear_faults()
        for attempt in range(1, PASSES_TO_CONVERGE + 1):
            if _one_pass(self.lab).outcome == reconcile.Outcome.CONVERGED:
                self.outcome.passes_to_converge = attempt
                break
        else:
            self.outcome.broken.append(f"not converged within {PASSES_TO_CONVERGE} passes")
        self._judge(hand_made, nodes_before)

    def _arm(self, target: NetScalerSimulator) -> str:
        """Arm the schedule's fault on ``target`` or the API server; what was armed, in words."""
        rng, fault = self.rng, self.outcome.fault
        if fault == "SSH dropped after N lines":
            lines, how = rng.randrange(0, 12), rng.choice(DROPS)
            target.drop_after(lines, how)
            return f"after {lines} lines, {how}"
        if fault == "a line rejected":
            pattern = rng.choice(REJECTED)
            target.reject_line(pattern, "% Invalid input detected", times=rng.choice((1, None)))
            return pattern
        if fault == "slow device":
            slow = rng.choice(SLOW)
            target.delay_replies(DEVICE_TIMEOUT * 1.5, slow, times=rng.randrange(1, 3))
            return f"{slow or 'every line'} {DEVICE_TIMEOUT * 1.5:g}s"
        if fault == "ADC reboot losing unsaved config":
            lines = rng.randrange(0, 8)
            target.drop_after(lines)
            return f"dropped after {lines} lines, then rebooted"
        verb, resource = rng.choice(REQUESTS)
        times = rng.randrange(1, 6)
        if fault == "API server timeouts":
            self.lab.server.inject_fault(verb, resource, delay=CALICO_TIMEOUT[1] * 3, times=times)
        else:
            status = 409 if fault == "API server 409" else rng.choice((500, 503, 504, 429))
            self.lab.server.inject_fault(verb, resource, status=status, times=times)
        return f"{verb} {resource} x{times}"

    def in_the_daemon(self) -> None:
        """``peeringd run`` converged, then the fault and the change; SIGHUP asks for each pass
        after it (rather than waiting out a backoff)."""
        hand_made, nodes_before = self._prepare()
        self.lab.close_systems()
        daemon = self._daemon()
        try:
            daemon.wait_for_event("pass done", timeout=30)
            restarted = self._daemon_fault(daemon)
            # Passes are counted from here, when the fault cleared (a pass under way counts).
            done = len(daemon.events("pass done"))
            if restarted is not None:
                daemon = restarted
            else:
                daemon.signal(signal.SIGHUP)
            self._daemon_converges(daemon, done)
            if daemon.process is not None and daemon.process.poll() is not None:
                self.outcome.broken.append(f"the daemon exited {daemon.process.returncode}")
        finally:
            if daemon.stop() != 0:
                self.outcome.broken.append("the daemon did not stop cleanly")
            # A thread that died (the node watch) prints its traceback and nothing else does.
            if "Traceback" in daemon.log.read_text():
                self.outcome.broken.append("a traceback in the daemon's log")
        self._judge(hand_made, nodes_before)

    def _daemon(self) -> DaemonProcess:
        lab = self.lab
        return DaemonProcess(lab.state_file, lab.kubeconfig, lab.folder, serve_metrics=False).start()

    def _daemon_fault(self, daemon: DaemonProcess) -> DaemonProcess | None:
        """Make the fault and the change; the daemon that runs now when it was restarted."""
        lab, fault = self.lab, self.outcome.fault
        if fault == "API server down for a while":
            lab.server.go_down()
            self.desired.make(lab)
            daemon.signal(signal.SIGHUP)
            time.sleep(self.outage)  # the fault is the time itself: the daemon retries meanwhile
            lab.server.come_up()
            self.outcome.detail = f"{self.outage:g}s"
            return None
        if fault == "watch expired (410)":
            # A newer version than any Node event: resuming the node watch after it gets 410.
            lab.server.put({**HAND_MADE_PEER, "metadata": {"name": "scratch"}})
            lab.server.expire_watches()
            lab.server.delete(PEERS, "scratch")
            daemon.wait_for_event("node watch expired")
            self.desired.make(lab)  # the watches ask for the pass
            return None
        slow = lab.adcs["adc-1"]
        slow.delay_replies(0.8, r"show running-config", times=1)
        self.desired.make(lab)
        until(
            lambda: [entry.text for entry in slow.journal()],
            lambda lines: "show running-config" in lines[-3:],
            timeout=20,
            what="a pass under way",
        )
        if fault == "SIGTERM mid-pass":
            daemon.signal(signal.SIGTERM)
            if (code := daemon.stop()) != 0:
                self.outcome.broken.append(f"SIGTERM mid-pass exited {code}")
            # Its first pass comes by itself: a SIGHUP before its handler is set would end it,
            # as it would any process (systemd reloads only after READY=1).
            return self._daemon()
        if fault == "SIGHUP storm":
            storm = self.rng.randrange(5, 40)
            for _ in range(storm):
                daemon.signal(signal.SIGHUP)
            self.outcome.detail = f"{storm} SIGHUPs"
            return None
        self.desired = _Desired(self.desired.change, self.desired.before, self.desired.after, 6)
        lab.write_state(self.desired.after, 6)  # replaced again, with another maxPaths
        return None

    def _daemon_converges(self, daemon: DaemonProcess, done: int) -> None:
        """One of the next three passes converges, and a read-only pass then agrees."""
        for attempt in range(1, PASSES_TO_CONVERGE + 1):
            passes = daemon.wait_for_event("pass done", count=done + attempt, timeout=60)
            if passes[done + attempt - 1]["outcome"] == "converged" and self._converged_now():
                self.outcome.passes_to_converge = attempt
                return
            daemon.signal(signal.SIGHUP)
        self.outcome.broken.append(f"not converged within {PASSES_TO_CONVERGE} passes of the daemon")

    def _converged_now(self) -> bool:
        loaded = statefile.load(self.lab.state_file)
        with _systems(self.lab, loaded) as systems:
            report = reconcile.reconcile(loaded, systems, apply=False)
        return report.outcome == reconcile.Outcome.CONVERGED

    def _prepare(self) -> tuple[object, dict[str, str]]:
        """Converge before the fault; the hand-made objects and the Nodes as they stand."""
        report = _one_pass(self.lab)
        if report.outcome != reconcile.Outcome.CONVERGED:
            raise AssertionError(f"the lab did not converge before the fault: {report.errors}")
        for saves in self.lab.saves.values():
            saves.clear()
        return _hand_made(self.lab), self.lab.nodes()

    def _judge(self, hand_made: object, nodes_before: dict[str, str]) -> None:
        lab, outcome = self.lab, self.outcome
        if _hand_made(lab) != hand_made:
            outcome.broken.append("an unowned object changed")
        wanted = ({*nodes_before.values()}, {*lab.nodes().values()})
        for name, saves in lab.saves.items():
            outcome.saves += len(saves)
            for found, strangers in filter(None, map(_saved_neighbours, saves)):
                if found not in wanted or strangers:
                    outcome.broken.append(f"{name} saved half-done neighbours {sorted(found)}")
        outcome.unmarked = _unmarked(lab, self.desired.after)


def _saved_neighbours(saved: DeviceConfig) -> tuple[set[str], set[str]] | None:
    """The addresses of the saved neighbours that are not hand-made, and those of them marked
    as someone else's (None: no router). A neighbour whose description a fault cut off
    counts as there: the peering is whole."""
    router = saved.zebos.bgp
    if router is None:
        return None
    found = {address for address in router.neighbors if address not in HAND_MADE_ADDRESSES}
    strangers = {
        address
        for address in found
        if (description := router.neighbors[address].description) is not None
        and not description.startswith(f"peeringd:{CLUSTER}:")
    }
    return found, strangers


def _unmarked(lab: _Lab, names: tuple[str, ...]) -> int:
    """Wanted neighbours without peeringd's description: left as hand-made, and reported."""
    nodes = set(lab.nodes().values())
    count = 0
    for name in names:
        router = lab.adcs[name].running().zebos.bgp
        if router is not None:
            count += sum(1 for a, n in router.neighbors.items() if a in nodes and not n.description)
    return count
