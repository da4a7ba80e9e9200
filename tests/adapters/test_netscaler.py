"""The NetScaler driver over real SSH (netmiko) against the NetScaler simulator."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from peeringd.adapters import netscaler
from peeringd.core import desired, live
from peeringd.core.plan import Action, Change, NeighbourChange, NeighbourSpec, Plan, RouterChange, plan
from peeringd.errors import (
    CommandRejected,
    DeviceAuthenticationFailed,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyMismatch,
    UnreadableReply,
)
from peeringd.lab.nssim import DeviceProfile, NetScalerSimulator, write_known_hosts
from tests import support

NODES = tuple(support.node(f"node-{i}", f"10.0.0.{10 + i}") for i in (1, 2, 3))
# What a pass reads when nothing changed since the last one: the rest is known.
NO_OP = ["show running-config", "show ip bgp summary"]


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[Callable[..., NetScalerSimulator]]:
    with contextlib.ExitStack() as stack:

        def start(profile: DeviceProfile | None = None, **options: Any) -> NetScalerSimulator:
            options.setdefault("host_key_path", tmp_path / "adc-host-key")
            return stack.enter_context(NetScalerSimulator(profile, **options))

        yield start


@pytest.fixture
def simulator(simulators: Callable[..., NetScalerSimulator]) -> NetScalerSimulator:
    return simulators()


def adc_for(simulator: NetScalerSimulator, folder: Path, **ssh: Any) -> desired.ADC:
    """The file's entry for ``simulator``, with a password file and a known_hosts trusting it."""
    password = folder / "adc.password"
    password.write_text(simulator.password + "\n")
    known_hosts = folder / "known_hosts"
    if not known_hosts.exists():
        write_known_hosts(known_hosts, [simulator])
    entry = support.adc(maxPaths={"ebgp": 8, "ibgp": 8})
    entry["ssh"] = {
        "host": "127.0.0.1",
        "port": simulator.port,
        "username": simulator.username,
        "passwordFile": str(password),
        "knownHostsFile": str(known_hosts),
        **ssh,
    }
    return desired.ADC.model_validate(entry)


@pytest.fixture
def driver(simulator: NetScalerSimulator, tmp_path: Path) -> Iterator[netscaler.NetScaler]:
    device = netscaler.NetScaler(adc_for(simulator, tmp_path), timeout=5)
    yield device
    device.close()


def device_plan(device: netscaler.NetScaler, *nodes: live.Node) -> Plan:
    state = support.state(support.adc(maxPaths={"ebgp": 8, "ibgp": 8}))
    return plan(state, live.LiveState(calico=support.calico(*nodes), adcs=(device.observe(),))).restricted(
        frozenset({"adc-1"})
    )


def reconcile_device(device: netscaler.NetScaler, *nodes: live.Node) -> Plan:
    """One pass on the device alone: observe, plan, apply."""
    planned = device_plan(device, *nodes)
    list(device.apply(planned.changes))
    return planned


def lines(simulator: NetScalerSimulator) -> list[str]:
    """What the simulator received, without netmiko's session set-up and the bare Enters it
    sends to find prompts."""
    return [e.text for e in simulator.journal() if e.text.strip() and e.text != "set cli mode -page OFF"]


def test_from_empty_to_converged_with_the_seed_procedure(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    reconcile_device(driver, *NODES)

    assert lines(simulator) == [
        "show ha node",
        "show ns feature",  # BGP is off: no session summary to read
        "vtysh",
        "show running-config",
        "show startup-config",
        "exit",
        "enable ns feature BGP",
        "vtysh",
        "configure terminal",
        "router bgp 500",
        "neighbor 10.0.0.11 remote-as 64512",
        "neighbor 10.0.0.11 description peeringd:prod-1:node-1",
        "neighbor 10.0.0.12 remote-as 64512",
        "neighbor 10.0.0.12 description peeringd:prod-1:node-2",
        "neighbor 10.0.0.13 remote-as 64512",
        "neighbor 10.0.0.13 description peeringd:prod-1:node-3",
        "max-paths ebgp 8",
        "max-paths ibgp 8",
        "exit",
        "ns route-install bgp",
        "end",
        "show running-config",
        "exit",
        "save ns config",
    ]
    assert device_plan(driver, *NODES).changes == ()


def test_a_pass_that_changes_nothing_sends_two_commands(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """The session stays in vtysh; the HA role, the feature and the startup config are known."""
    reconcile_device(driver, *NODES)
    reconcile_device(driver, *NODES)
    simulator.clear_journal()

    assert reconcile_device(driver, *NODES).changes == ()
    assert lines(simulator) == NO_OP


def test_a_login_reads_what_a_session_then_keeps(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """The HA role, the BGP feature and the startup config, once per login."""
    reconcile_device(driver, *NODES)
    driver.close()
    simulator.clear_journal()
    driver.observe()

    assert lines(simulator) == [
        "show ha node",
        "show ns feature",
        "vtysh",
        "show running-config",
        "show startup-config",
        "show ip bgp summary",
    ]


def test_one_node_joining_sends_exactly_its_neighbour_lines(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    reconcile_device(driver, *NODES[:2])
    reconcile_device(driver, *NODES[:2])
    simulator.clear_journal()
    reconcile_device(driver, *NODES)

    assert lines(simulator) == [
        *NO_OP,
        "exit",
        "show ha node",  # before every configuration session: a failover may have happened
        "vtysh",
        "configure terminal",
        "router bgp 500",
        "neighbor 10.0.0.13 remote-as 64512",
        "neighbor 10.0.0.13 description peeringd:prod-1:node-3",
        "exit",
        "end",
        "show running-config",
        "exit",
        "save ns config",
    ]


def test_a_node_that_became_secondary_gets_no_configuration(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """A failover leaves the session open on what is now the secondary: the write is refused."""
    reconcile_device(driver, *NODES[:2])
    reconcile_device(driver, *NODES[:2])
    simulator.set_ha_role("secondary")
    simulator.clear_journal()
    with pytest.raises(DeviceError, match="is the secondary of an HA pair"):
        reconcile_device(driver, *NODES)

    assert [line for line in lines(simulator) if "10.0.0.13" in line] == []
    assert "configure terminal" not in lines(simulator)


def test_the_feature_turned_off_behind_its_back_is_seen(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """vtysh stops answering the summary: the feature is read again, and turned on again."""
    reconcile_device(driver, *NODES)
    simulator.set_feature("BGP", False)

    assert not driver.observe().bgp_feature
    assert [c.kind for c in reconcile_device(driver, *NODES).changes] == ["bgp-feature", "save"]
    assert simulator.running().features["BGP"]


def test_the_observation_that_verifies_a_pass_reuses_its_running_config(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """The configuration session already read it to prove every change: not twice a pass."""
    reconcile_device(driver, *NODES)
    simulator.clear_journal()
    driver.observe()

    assert lines(simulator) == ["vtysh", "show ip bgp summary"]


def test_a_running_config_read_again_unchanged_is_not_parsed_again(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """The same text gives the same reading, kept from the last parse; another text is parsed."""
    reconcile_device(driver, *NODES)
    driver.observe()  # the pass's verification
    first, again = driver.observe(), driver.observe()
    running = simulator.running().zebos
    assert running.bgp is not None
    running.bgp.max_paths_ebgp = 4
    simulator.set_zebos(running)

    assert again.neighbours == first.neighbours
    assert all(read is kept for read, kept in zip(again.neighbours, first.neighbours, strict=True))
    assert driver.observe().max_paths.ebgp == 4


def test_a_hand_made_change_makes_it_compare_the_startup_config_again(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    reconcile_device(driver, *NODES)
    driver.observe()  # the pass's verification
    running = simulator.running().zebos
    assert running.bgp is not None
    running.bgp.max_paths_ebgp = 4  # what an operator typing in vtysh would leave unsaved
    simulator.set_zebos(running)
    simulator.clear_journal()

    assert driver.observe().unsaved
    assert "show startup-config" in lines(simulator)


def test_one_node_leaving_removes_only_its_neighbour(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    reconcile_device(driver, *NODES)
    simulator.clear_journal()
    reconcile_device(driver, *NODES[:2])

    assert "no neighbor 10.0.0.13" in lines(simulator)
    assert [str(n.address) for n in driver.observe().neighbours] == ["10.0.0.11", "10.0.0.12"]


def test_hand_made_neighbours_are_untouched(
    simulators: Callable[..., NetScalerSimulator], tmp_path: Path
) -> None:
    hand_made = (
        "router bgp 500\n neighbor 10.0.0.11 remote-as 64999\n neighbor 10.0.0.50 remote-as 65000\n!\nend\n"
    )
    simulator = simulators(DeviceProfile(zebos_config=hand_made))
    simulator.set_feature("BGP", True)
    device = netscaler.NetScaler(adc_for(simulator, tmp_path))
    try:
        planned = reconcile_device(device, *NODES)
        neighbours = {str(n.address): (n.remote_as, n.description) for n in device.observe().neighbours}
    finally:
        device.close()

    assert neighbours["10.0.0.11"] == (64999, None)
    assert neighbours["10.0.0.50"] == (65000, None)
    assert not [line for line in lines(simulator) if "10.0.0.11" in line or "10.0.0.50" in line]
    assert "neighbor 10.0.0.11 was not made by peeringd" in planned.findings[0].message


def test_the_feature_off_device_gets_it_enabled_and_saved(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    assert not driver.observe().bgp_feature
    reconcile_device(driver, *NODES)
    driver.save()

    assert simulator.saved().features["BGP"]
    assert simulator.saved().zebos == simulator.running().zebos


def test_a_line_rejected_mid_batch_is_named_and_the_rest_is_left_to_the_next_pass(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """The neighbour lines go out as one batch; the rejected one is named with the device's
    answer, the changes the batch completed count as applied, and nothing after it is sent."""
    nodes = tuple(support.node(f"node-{i}", f"10.0.1.{i}") for i in range(1, 41))
    simulator.reject_line(r"neighbor 10\.0\.1\.20 remote-as 64512", "% Neighbor limit reached", times=1)
    planned = device_plan(driver, *nodes)
    applied: list[Change] = []
    with pytest.raises(CommandRejected) as caught:
        applied.extend(driver.apply(planned.changes))

    assert str(caught.value) == (
        "adc-1: rejected 'neighbor 10.0.1.20 remote-as 64512': % Neighbor limit reached "
        "(1 later lines of its batch were rejected too)"  # its description, for want of a neighbour
    )
    rejected = [e.text for e in simulator.journal() if e.fault == "rejected"]
    assert rejected == ["neighbor 10.0.1.20 remote-as 64512"]
    added = [str(c.address) for c in applied if isinstance(c, NeighbourChange)]
    assert added == [f"10.0.1.{i}" for i in range(1, 41) if i != 20]
    assert "ns route-install bgp" not in lines(simulator)  # the batch after it was not sent
    simulator.clear_journal()
    reconcile_device(driver, *nodes)  # the next pass re-plans from what is there
    assert [line for line in lines(simulator) if line.startswith("neighbor")] == [
        "neighbor 10.0.1.20 remote-as 64512",
        "neighbor 10.0.1.20 description peeringd:prod-1:node-20",
    ]
    assert device_plan(driver, *nodes).changes == ()


def test_a_dropped_connection_is_recovered_next_pass_without_duplicates(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    simulator.drop_on(r"neighbor 10\.0\.0\.12 remote-as 64512", how="transport")
    with pytest.raises(DeviceUnreachable, match="adc-1: the connection"):
        reconcile_device(driver, *NODES)
    logins = simulator.logins
    simulator.clear_journal()
    reconcile_device(driver, *NODES)

    assert simulator.logins == logins + 1
    sent = lines(simulator)
    assert "neighbor 10.0.0.11 remote-as 64512" not in sent
    assert sent.count("neighbor 10.0.0.12 remote-as 64512") == 1
    assert device_plan(driver, *NODES).changes == ()


def test_one_session_serves_many_passes(simulator: NetScalerSimulator, driver: netscaler.NetScaler) -> None:
    for _ in range(3):
        reconcile_device(driver, *NODES)

    assert simulator.logins == 1


def test_a_wrong_host_key_is_refused_naming_both_fingerprints(
    simulators: Callable[..., NetScalerSimulator], tmp_path: Path
) -> None:
    impostor = simulators(host_key_path=tmp_path / "other-key")
    known_hosts = tmp_path / "known_hosts"
    trusted = simulators(host_key_path=tmp_path / "trusted-key")
    known_hosts.write_text(trusted.known_hosts_entry().replace(str(trusted.port), str(impostor.port)) + "\n")
    device = netscaler.NetScaler(adc_for(impostor, tmp_path))
    with pytest.raises(HostKeyMismatch) as caught:
        device.observe()

    message = str(caught.value)
    assert message.startswith(f"adc-1: 127.0.0.1:{impostor.port} offered host key SHA256:")
    assert f"but {known_hosts} expects SHA256:" in message
    assert impostor.logins == 0


def test_an_unknown_host_key_is_refused_with_its_fingerprint(
    simulator: NetScalerSimulator, tmp_path: Path
) -> None:
    (tmp_path / "known_hosts").write_text("")
    device = netscaler.NetScaler(adc_for(simulator, tmp_path))
    with pytest.raises(HostKeyMismatch, match=r"offered host key SHA256:\S+, which is not in"):
        device.observe()


def test_wrong_password_is_an_authentication_error(simulator: NetScalerSimulator, tmp_path: Path) -> None:
    adc = adc_for(simulator, tmp_path)
    assert adc.ssh.password_file is not None
    adc.ssh.password_file.write_text("wrong\n")
    device = netscaler.NetScaler(adc)
    with pytest.raises(DeviceAuthenticationFailed) as caught:
        device.observe()

    assert str(caught.value) == f"adc-1: nsroot@127.0.0.1:{simulator.port} refused the credentials"
    assert "wrong" not in str(caught.value)


def test_a_device_that_stops_answering_times_out(simulator: NetScalerSimulator, tmp_path: Path) -> None:
    device = netscaler.NetScaler(adc_for(simulator, tmp_path), timeout=1)
    device.observe()
    simulator.delay_replies(3, r"show ns feature")
    with pytest.raises(DeviceTimeout, match="no answer to 'show ns feature' within 1s"):
        device.observe()
    device.close()


def test_an_unreachable_device(tmp_path: Path, simulator: NetScalerSimulator) -> None:
    adc = adc_for(simulator, tmp_path)
    simulator.stop()
    with pytest.raises(DeviceUnreachable, match=f"cannot connect to 127.0.0.1:{adc.ssh.port}"):
        netscaler.NetScaler(adc).observe()


@pytest.mark.parametrize("prompt", [">", "adc-1>", "adc-1 - Primary - nsroot> "])
def test_custom_prompts(simulators: Callable[..., NetScalerSimulator], tmp_path: Path, prompt: str) -> None:
    simulator = simulators(DeviceProfile(prompt=prompt))
    device = netscaler.NetScaler(adc_for(simulator, tmp_path))
    try:
        reconcile_device(device, *NODES)
        assert device_plan(device, *NODES).changes == ()
    finally:
        device.close()


def test_unsafe_descriptions_are_refused_before_connecting(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    bad = NeighbourChange(
        action=Action.CREATE,
        adc="adc-1",
        address=ipaddress.IPv4Address("10.0.0.11"),
        before=None,
        after=NeighbourSpec(remote_as=64512, description="peeringd:x\nno router bgp 500"),
    )
    router = RouterChange(action=Action.CREATE, adc="adc-1", before=None, after=500)
    with pytest.raises(DeviceError, match=r"nothing sent: description .* is not safe on a command line"):
        list(driver.apply((router, bad)))

    assert simulator.logins == 0


def test_a_save_that_failed_is_made_by_the_next_pass(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler
) -> None:
    """The device shows its running config differs from the saved one, so the next plan saves."""
    simulator.reject_line("save ns config", "ERROR: Operation not permitted", times=1)
    with pytest.raises(CommandRejected, match="rejected 'save ns config': ERROR: Operation not permitted"):
        reconcile_device(driver, *NODES)
    assert driver.observe().unsaved
    simulator.clear_journal()

    assert [c.kind for c in reconcile_device(driver, *NODES).changes] == ["save"]
    assert lines(simulator)[-1] == "save ns config"
    assert simulator.saved().zebos == simulator.running().zebos
    assert not driver.observe().unsaved


def test_the_secondary_of_an_ha_pair_is_not_configured(
    simulators: Callable[..., NetScalerSimulator], tmp_path: Path
) -> None:
    """Its routing configuration comes from the primary by HA sync: peeringd says so and sends nothing."""
    simulator = simulators(DeviceProfile(ha_role="secondary"))
    device = netscaler.NetScaler(adc_for(simulator, tmp_path))
    with pytest.raises(DeviceError, match=r"is the secondary of an HA pair, .*point ssh.host at the primary"):
        device.observe()

    assert lines(simulator) == ["show ha node"]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(
            "!\nrouter bgp 500\n neighbor 10.0.0.11 remote-as 64512\n neighbor 10.0.0.11 description pee",
            "the reply ends before `end`: it was cut off",
            id="cut-in-router-bgp",
        ),
        pytest.param(
            "!\nrouter bgp 500\n neighbor 10.0.0.11 remote-as 64512\n--More--\n!\nend",
            "line 4 is not configuration (a prompt, a pager?): '--More--'",
            id="paged",
        ),
        pytest.param(
            "!\nrouter bgp 500\n neighbor 10.0.0.11 remote-as 64512\nns#\n!\nend",
            # The reader takes a prompt on a line of its own as the end of the reply.
            "the reply ends before `end`: it was cut off",
            id="prompt-inside",
        ),
    ],
)
def test_a_running_config_that_cannot_be_read_leaves_the_device_alone(
    simulator: NetScalerSimulator, driver: netscaler.NetScaler, reply: str, reason: str
) -> None:
    """A garbled reply is not read as fewer neighbours: the device is not observed, nothing is
    sent, and the next pass, with a whole reply, finds nothing to change."""
    reconcile_device(driver, *NODES)
    driver.observe()  # the verification's read of the running config is used up
    simulator.clear_journal()
    simulator.reject_line("show running-config", reply, times=1)  # answered with `reply`
    with pytest.raises(UnreadableReply) as caught:
        reconcile_device(driver, *NODES)

    assert str(caught.value) == f"adc-1: cannot read its reply to show running-config: {reason}"
    assert [(e.text, e.fault) for e in simulator.journal() if e.text.strip()] == [
        ("show running-config", "rejected"),
    ]
    assert device_plan(driver, *NODES).changes == ()
