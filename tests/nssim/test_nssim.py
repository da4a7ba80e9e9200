"""The NetScaler simulator behaves like the ADC's CLI, for its pure parts and for netmiko over SSH."""

from __future__ import annotations

import re
import stat
import textwrap
from pathlib import Path

import asyncssh
import pytest
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException, ReadTimeout

from peeringd.lab.nssim import (
    BgpRouter,
    BgpSession,
    DeviceProfile,
    DeviceTexts,
    JournalEntry,
    Neighbor,
    NetScalerSimulator,
    ZebosConfig,
    grammar,
    known_hosts_entry,
    vtysh,
)
from peeringd.lab.nssim.device import Device, DeviceConfig
from peeringd.lab.nssim.faults import DropHow, FaultAction, FaultPlan
from peeringd.lab.nssim.profile import HaRole
from peeringd.lab.nssim.shell import CliSession, Line, LineEditor
from tests.nssim.conftest import Connect, StartSimulator

# `show running-config` as the Calico peering guide prints it (the reference's sample).
REFERENCE_RUNNING_CONFIG = """\
!
log syslog
log record-priority
!
ns route-install bgp
!
interface lo0
 ip address 127.0.0.1/8
 ipv6 address fe80::1/64
 ipv6 address ::1/128
!
interface vlan0
 ip address 10.102.33.208/24
 ipv6 address fe80::2cf6:beff:fe94:9f63/64
!
router bgp 500
 max-paths ebgp 8
 max-paths ibgp 8
 neighbor 10.102.33.198 remote-as 64512
 neighbor 10.102.33.202 remote-as 64512
!
end"""

PROMPTS = [">", "host>", "host - Primary - nsroot> "]


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(profile: DeviceProfile | None = None, clock: Clock | None = None) -> CliSession:
    return CliSession(Device(profile or DeviceProfile(), clock or Clock()))


def run(cli: CliSession, *lines: str) -> str:
    """Type lines; the device's reply to the last one."""
    output = ""
    for text in lines:
        output = cli.handle(Line(text)).output
    return output


def in_router(cli: CliSession) -> CliSession:
    run(cli, "enable ns feature BGP", "vtysh", "configure terminal", "router bgp 500")
    return cli


def non_blank(journal: list[JournalEntry]) -> list[str]:
    return [entry.text for entry in journal if entry.text.strip()]


class TestGrammar:
    """Keywords abbreviate to unique prefixes; placeholders validate their word."""

    COMMANDS = (
        grammar.Command("summary", "show ip bgp summary"),
        grammar.Command("running", "show running-config"),
        grammar.Command("exit", "exit"),
        grammar.Command("exit-af", "exit-address-family"),
        grammar.Command("remote-as", "neighbor <ip> remote-as <asn>"),
        grammar.Command("description", "neighbor <ip> description <text...>"),
    )

    def match(self, line: str) -> grammar.Match | grammar.NoMatch:
        return grammar.match(grammar.split_words(line), self.COMMANDS, vtysh.VALIDATORS, case_sensitive=True)

    def test_unique_prefixes_match(self) -> None:
        assert self.match("sh ip b s") == grammar.Match("summary", ())

    def test_an_exact_keyword_beats_a_longer_one(self) -> None:
        assert self.match("exit") == grammar.Match("exit", ())

    def test_a_shared_prefix_is_ambiguous(self) -> None:
        assert self.match("exi") == grammar.NoMatch("ambiguous", 0)

    def test_rest_of_line_placeholders_join_the_words(self) -> None:
        assert self.match("neighbor 10.0.0.1 description calico  node a") == grammar.Match(
            "description", ("10.0.0.1", "calico node a")
        )

    @pytest.mark.parametrize(
        ("line", "word_index"),
        [("neighbor 10.0.0.300 remote-as 1", 1), ("neighbor 10.0.0.1 remote-as 4294967296", 3)],
    )
    def test_a_bad_address_or_as_is_invalid_at_its_word(self, line: str, word_index: int) -> None:
        assert self.match(line) == grammar.NoMatch("invalid", word_index)

    def test_missing_words_are_incomplete(self) -> None:
        assert self.match("neighbor 10.0.0.1 remote-as") == grammar.NoMatch("incomplete", 3)


class TestLineEditor:
    """Typed characters are echoed; CR, LF and CR LF each finish one line."""

    def test_every_line_ending_netmiko_sends_finishes_one_line(self) -> None:
        editor = LineEditor()

        events = editor.feed("a\nb\r\nc\r") + editor.feed("\nd")

        assert events == ["a\n", Line("a"), "b\n", Line("b"), "c\n", Line("c"), "d"]

    def test_backspace_erases_and_control_keys_are_swallowed(self) -> None:
        events = LineEditor().feed("sx\x7fh\x00\t\x1b[A ro\x08\x08route\n")

        assert events[-1] == Line("sh route")

    def test_pasted_lines_read_as_the_same_lines_typed_key_by_key(self) -> None:
        """Whole lines at a time (printable text and LFs) give what one key at a time gives."""
        chunks = ["neighbor 10.0.0.11 remote-as 64512\nneighbor 10.0.0.11 desc", "ription x\n\nend"]
        pasted, typed = LineEditor(), LineEditor()

        at_once = [event for chunk in chunks for event in pasted.feed(chunk)]
        # A NUL (netmiko's keep-alive) is swallowed, and makes the editor go key by key.
        key_by_key = [event for chunk in chunks for event in typed.feed(f"\x00{chunk}")]

        assert [e for e in at_once if isinstance(e, Line)] == [e for e in key_by_key if isinstance(e, Line)]
        assert "".join(e for e in at_once if isinstance(e, str)) == "".join(
            e for e in key_by_key if isinstance(e, str)
        )
        assert Line("neighbor 10.0.0.11 description x") in at_once

    def test_ctrl_c_and_ctrl_z_finish_the_line_with_their_own_ending(self) -> None:
        events = LineEditor().feed("conf\x03end\x1a")

        assert [event for event in events if isinstance(event, Line)] == [
            Line("conf", "interrupt"),
            Line("end", "suspend"),
        ]


class TestNscli:
    """nscli frames success with ` Done` and failure with `ERROR:`, and accepts abbreviations."""

    def test_login_prints_banner_done_and_prompt(self) -> None:
        cli = session(DeviceProfile(banner="### hello ###", prompt="host> "))

        assert cli.greeting() == "### hello ###\n Done\nhost> "

    def test_success_prints_done_then_the_prompt(self) -> None:
        assert run(session(), "enable ns feature BGP") == " Done\n>"

    @pytest.mark.parametrize("line", ["en feature bgp", "EN NS FEAT Bgp", "enable ns feature BGP"])
    def test_abbreviations_and_any_case_enable_bgp(self, line: str) -> None:
        cli = session()

        run(cli, line)

        assert "BGP Routing                    BGP                  ON" in run(cli, "sh ns feat")

    def test_the_feature_table_lists_many_features_and_ends_with_done(self) -> None:
        output = run(session(), "show ns feature")

        assert (len(output.splitlines()), output.splitlines()[-3:]) == (
            2 + 44 + 2,
            [" 44)    API Gateway                    APIGateway           OFF", " Done", ">"],
        )

    def test_failure_prints_error_without_done(self) -> None:
        assert run(session(), "frobnicate ns feature") == "ERROR: No such command\n>"

    @pytest.mark.parametrize(
        ("line", "error"),
        [
            ("s ns feature", "ERROR: Ambiguous command"),
            ("enable ns feature NOPE", "ERROR: No such feature"),
            ("enable ns feature", "ERROR: Required argument missing"),
            ("set cli mode -page MAYBE", "ERROR: Invalid argument value"),
        ],
    )
    def test_each_failure_has_its_text(self, line: str, error: str) -> None:
        assert run(session(), line) == f"{error}\n>"

    def test_error_texts_are_configurable(self) -> None:
        cli = session(DeviceProfile(texts=DeviceTexts(unknown_command="ERROR: Unknown command")))

        assert run(cli, "frobnicate") == "ERROR: Unknown command\n>"

    def test_bare_enter_redraws_the_prompt(self) -> None:
        assert (
            run(session(DeviceProfile(prompt="host - Primary - nsroot> ")), "") == "host - Primary - nsroot> "
        )

    def test_paging_can_be_switched_off(self) -> None:
        cli = session()

        assert (run(cli, "set cli mode -page OFF"), cli.paging) == (" Done\n>", False)

    def test_show_route_prints_the_table(self) -> None:
        output = run(session(), "sh route")

        assert (
            "1)      0.0.0.0          0.0.0.0          192.0.2.1        UP      0               STATIC"
            in output.splitlines()
        )

    @pytest.mark.parametrize(
        ("role", "states"), [("standalone", ["Primary"]), ("primary", ["Primary", "Secondary"])]
    )
    def test_show_ha_node_reports_each_node(self, role: HaRole, states: list[str]) -> None:
        output = run(session(DeviceProfile(ha_role=role)), "show ha node")

        assert re.findall(r"Master State: (\w+)", output) == states

    def test_show_version_prints_the_build(self) -> None:
        output = run(session(DeviceProfile(version="NetScaler NS13.1: Build 49.13.nc")), "sh ver")

        assert output == "\tNetScaler NS13.1: Build 49.13.nc\n Done\n>"

    def test_exit_logs_out(self) -> None:
        assert session().handle(Line("exit")).close


class TestVtysh:
    """vtysh edits the ZebOS model through its modes and prompts."""

    def test_prompts_follow_the_modes(self) -> None:
        cli = session()
        outputs = [
            run(cli, line)
            for line in (
                "enable ns feature BGP",
                "vtysh",
                "conf t",
                "router bgp 500",
                "address-family ipv4 unicast",
                "exit-address-family",
                "exit",
                "exit",
                "exit",
            )
        ]

        assert outputs == [
            " Done\n>",
            "ns#",
            "Enter configuration commands, one per line. End with CNTL/Z.\nns(config)#",
            "ns(config-router)#",
            "ns(config-router-af)#",
            "ns(config-router)#",
            "ns(config)#",
            "ns#",
            " Done\n>",
        ]

    @pytest.mark.parametrize("ending", ["end", "\x1a"])
    def test_end_and_ctrl_z_return_to_exec_mode(self, ending: str) -> None:
        cli = in_router(session())

        reply = cli.handle(Line("", "suspend") if ending == "\x1a" else Line(ending))

        assert (reply.output, cli.mode) == ("ns#", "vtysh")

    def test_router_bgp_is_refused_while_the_feature_is_off(self) -> None:
        cli = session()

        assert run(cli, "vtysh", "conf t", "router bgp 500") == "% BGP feature is not enabled\nns(config)#"

    def test_router_bgp_works_without_the_feature_when_so_configured(self) -> None:
        cli = session(DeviceProfile(bgp_requires_feature=False))

        assert run(cli, "vtysh", "conf t", "router bgp 500") == "ns(config-router)#"

    def test_a_second_as_is_refused(self) -> None:
        cli = in_router(session())

        assert run(cli, "exit", "router bgp 600") == "% BGP is already running; AS is 500\nns(config)#"

    def test_no_router_bgp_removes_the_router(self) -> None:
        device = Device(DeviceProfile(), Clock())
        cli = in_router(CliSession(device))

        run(cli, "neighbor 10.0.0.1 remote-as 64512", "exit", "no router bgp 500", "router bgp 600")

        assert (device.running.zebos.bgp, cli.mode) == (
            BgpRouter(asn=600, max_paths_ebgp=8, max_paths_ibgp=8),
            "config-router",
        )

    def test_neighbours_are_created_updated_described_and_removed(self) -> None:
        device = Device(DeviceProfile(), Clock())
        cli = in_router(CliSession(device))

        run(
            cli,
            "neighbor 10.0.0.1 remote-as 64512",
            "neighbor 10.0.0.2 remote-as 64512",
            "neighbor 10.0.0.1 remote-as 64513",
            "neighbor 10.0.0.1 description calico node-1",
            "neighbor 10.0.0.2 description gone soon",
            "no neighbor 10.0.0.2 description",
            "neighbor 10.0.0.3 remote-as 1",
            "no neighbor 10.0.0.3",
        )

        assert device.running.zebos.bgp is not None
        assert device.running.zebos.bgp.neighbors == {
            "10.0.0.1": Neighbor("10.0.0.1", 64513, description="calico node-1"),
            "10.0.0.2": Neighbor("10.0.0.2", 64512),
        }

    def test_a_description_needs_an_existing_neighbour(self) -> None:
        cli = in_router(session())

        assert (
            run(cli, "neighbor 10.0.0.9 description x")
            == "% Specify remote-as or peer-group commands first\nns(config-router)#"
        )

    @pytest.mark.parametrize(
        ("line", "column"),
        [
            ("neighbor 10.0.0.300 remote-as 64512", 9),
            ("neighbor 10.0.0.1 remote-as 0", 28),
            ("neighbour 10.0.0.1 remote-as 1", 0),
        ],
    )
    def test_bad_input_is_marked_with_a_caret(self, line: str, column: int) -> None:
        cli = in_router(session())

        assert run(cli, line) == (
            " " * (len("ns(config-router)#") + column)
            + "^\n% Invalid input detected at '^' marker.\nns(config-router)#"
        )

    def test_incomplete_input_says_so(self) -> None:
        assert run(in_router(session()), "neighbor 10.0.0.1") == "% Incomplete command.\nns(config-router)#"

    def test_max_paths_default_and_no_forms_restore_it(self) -> None:
        device = Device(DeviceProfile(), Clock())
        cli = in_router(CliSession(device))

        run(cli, "max-paths ebgp 2", "max-paths ibgp 4")
        changed = device.running.zebos.copy()
        run(cli, "no max-paths ebgp", "no max-paths ibgp 4")

        assert changed.bgp is not None
        assert device.running.zebos.bgp is not None
        assert [
            (changed.bgp.max_paths_ebgp, changed.bgp.max_paths_ibgp),
            (device.running.zebos.bgp.max_paths_ebgp, device.running.zebos.bgp.max_paths_ibgp),
        ] == [(2, 4), (8, 8)]

    def test_without_a_max_paths_default_no_lines_appear(self) -> None:
        device = Device(DeviceProfile(max_paths_default=None), Clock())
        in_router(CliSession(device))

        assert "max-paths" not in device.running.zebos.render()

    def test_route_install_and_redistribute_kernel_are_rendered(self) -> None:
        cli = in_router(session())

        run(cli, "redistribute kernel", "exit", "ns route-install bgp", "end")
        rendered = run(cli, "show running-config")

        assert ("!\nns route-install bgp\n!" in rendered, " redistribute kernel\n!" in rendered) == (
            True,
            True,
        )

    def test_no_route_install_removes_it(self) -> None:
        device = Device(DeviceProfile(zebos_config=REFERENCE_RUNNING_CONFIG), Clock())

        run(CliSession(device), "vtysh", "conf t", "no ns route-install bgp")

        assert device.running.zebos.route_install_bgp is False

    def test_write_saves_only_zebos_and_save_ns_config_saves_both(self) -> None:
        device = Device(DeviceProfile(), Clock())
        cli = in_router(CliSession(device))
        run(cli, "neighbor 10.0.0.1 remote-as 64512", "end")

        written = run(cli, "write memory")
        after_write = device.saved.copy()
        run(cli, "exit", "save ns config")

        assert written == "Building configuration...\n[OK]\nns#"
        assert (after_write.features["BGP"], after_write.zebos == device.running.zebos) == (False, True)
        assert device.saved == device.running

    def test_show_startup_config_prints_the_saved_config(self) -> None:
        cli = in_router(session())
        run(cli, "neighbor 10.0.0.1 remote-as 64512", "end")

        before_write = run(cli, "show startup-config")
        after_write = run(cli, "write", "show startup-config")

        assert (" neighbor 10.0.0.1" in before_write, " neighbor 10.0.0.1" in after_write) == (False, True)

    def test_do_runs_exec_commands_from_config_modes(self) -> None:
        cli = in_router(session())

        assert run(cli, "do show running-config").endswith(
            "router bgp 500\n max-paths ebgp 8\n max-paths ibgp 8\n!\nend\nns(config-router)#"
        )

    def test_bgp_summary_reports_each_session(self) -> None:
        clock = Clock()
        device = Device(DeviceProfile(), clock)
        cli = in_router(CliSession(device))
        run(cli, "neighbor 10.0.0.2 remote-as 64512", "neighbor 10.0.0.10 remote-as 64512", "end")
        device.sessions["10.0.0.10"] = BgpSession("Active")
        clock.now += 3725

        lines = run(cli, "show ip bgp summary").splitlines()

        assert lines[4:] == [
            "10.0.0.2                 4 64512   65         64       1      0      0  01:02:05               0",
            "10.0.0.10                4 64512    0          0       1      0      0     never          Active",
            "",
            "Total number of neighbors 2",
            "",
            "Total number of Established sessions 1",
            "ns#",
        ]


class TestRunningConfig:
    """`show running-config` text parses into the model and renders back unchanged."""

    def test_the_reference_sample_round_trips(self) -> None:
        assert vtysh.parse_running_config(REFERENCE_RUNNING_CONFIG, 8).render() == REFERENCE_RUNNING_CONFIG

    def test_the_sample_parses_into_the_model(self) -> None:
        config = vtysh.parse_running_config(REFERENCE_RUNNING_CONFIG, 8)

        assert (config.route_install_bgp, config.bgp) == (
            True,
            BgpRouter(
                asn=500,
                max_paths_ebgp=8,
                max_paths_ibgp=8,
                neighbors={
                    "10.102.33.198": Neighbor("10.102.33.198", 64512),
                    "10.102.33.202": Neighbor("10.102.33.202", 64512),
                },
            ),
        )

    def test_unmodelled_stanzas_and_router_lines_are_kept_in_place(self) -> None:
        text = textwrap.dedent(
            """\
            !
            hostname ns
            !
            interface vlan0
             ip address 192.0.2.208/24
            !
            router bgp 500
             max-paths ebgp 8
             max-paths ibgp 8
             neighbor 10.0.0.1 remote-as 64512
             bgp graceful-restart
            !
            router ospf 1
             network 192.0.2.0/24 area 0
            !
            end"""
        )

        assert vtysh.parse_running_config(text, 8).render() == text

    def test_neighbours_render_in_numeric_order_with_their_details(self) -> None:
        config = ZebosConfig(
            bgp=BgpRouter(
                asn=500,
                neighbors={
                    "10.0.0.10": Neighbor("10.0.0.10", 1, description="ten", password="pw", ebgp_multihop=2),
                    "10.0.0.9": Neighbor("10.0.0.9", 1),
                },
            )
        )

        assert config.render().splitlines()[2:-2] == [
            " neighbor 10.0.0.9 remote-as 1",
            " neighbor 10.0.0.10 remote-as 1",
            " neighbor 10.0.0.10 description ten",
            " neighbor 10.0.0.10 password pw",
            " neighbor 10.0.0.10 ebgp-multihop 2",
        ]

    def test_a_fresh_adc_has_logs_and_interfaces_only(self) -> None:
        rendered = Device(DeviceProfile(interface_address="198.51.100.7/25"), Clock()).running.zebos.render()

        assert (rendered.count("router bgp"), " ip address 198.51.100.7/25" in rendered) == (0, True)


class TestFaultPlan:
    """Faults fire on the lines they name, as often as asked."""

    def test_drop_after_counts_non_blank_lines_only(self) -> None:
        plan = FaultPlan()
        plan.drop_after(2)

        actions = [plan.on_line(line) for line in ("a", "", "b", "", "c", "d")]

        assert [action.drop for action in actions] == [None, None, None, None, "channel", None]

    def test_a_rejection_fires_as_many_times_as_asked(self) -> None:
        plan = FaultPlan()
        plan.reject(r"save ns config", "ERROR: Disk full", times=1)

        actions = [plan.on_line(line) for line in ("save ns config", " save ns config ", "save ns config x")]

        assert actions == [
            FaultAction(reject=True, reject_text="ERROR: Disk full"),
            FaultAction(),
            FaultAction(),
        ]

    def test_clear_disarms_everything(self) -> None:
        plan = FaultPlan()
        plan.delay(5)
        plan.refuse_auth = True

        plan.clear()

        assert (plan.on_line("x"), plan.refuse_auth) == (FaultAction(), False)


class TestNetmiko:
    """netmiko's real netscaler driver drives the simulator over SSH on 127.0.0.1."""

    @pytest.mark.parametrize(
        ("prompt", "banner"),
        [(">", None), (">", "default"), ("host>", "default"), ("host - Primary - nsroot> ", "default")],
    )
    def test_login_finds_the_prompt_and_shows_features(
        self, start: StartSimulator, connect: Connect, prompt: str, banner: str | None
    ) -> None:
        """The default banner is full of '#', which netmiko's first `[>#]` read stops at."""
        profile = DeviceProfile(prompt=prompt) if banner else DeviceProfile(prompt=prompt, banner=None)
        conn = connect(start(profile))

        output = conn.send_command("show ns feature")

        assert (conn.base_prompt, output.splitlines()[-1]) == (
            prompt.strip().removesuffix(">") or ">",
            " 44)    API Gateway                    APIGateway           OFF",
        )
        assert " 18)    BGP Routing                    BGP                  OFF" in output.splitlines()

    @pytest.mark.parametrize("prompt", PROMPTS)
    def test_the_driver_sequence_configures_and_saves_bgp(
        self, start: StartSimulator, connect: Connect, prompt: str
    ) -> None:
        """Prompt-changing commands need expect_string; in vtysh, output keeps its `ns#` line."""
        sim = start(DeviceProfile(prompt=prompt))
        conn = connect(sim)
        nscli_prompt = re.escape(prompt.strip())
        sim.clear_journal()

        outputs = [
            conn.send_command("enable ns feature BGP"),
            conn.send_command("vtysh", expect_string=r"ns#"),
            conn.send_command("configure terminal", expect_string=r"ns\(config\)#"),
            conn.send_command("router bgp 500", expect_string=r"ns\(config-router\)#"),
            conn.send_command("neighbor 10.0.0.1 remote-as 64512"),
            conn.send_command("neighbor 10.0.0.1 description calico node-1"),
            conn.send_command("end", expect_string=r"ns#"),
        ]
        running = conn.send_command("show running-config")
        outputs += [
            conn.send_command("exit", expect_string=nscli_prompt),
            conn.send_command("save ns config"),
        ]

        assert outputs == [
            "",
            "ns#",
            "Enter configuration commands, one per line. End with CNTL/Z.\nns(config)#",
            "ns(config-router)#",
            "ns(config-router)#",
            "ns(config-router)#",
            "ns#",
            "",
            "",
        ]
        assert running.splitlines()[-6:] == [
            " max-paths ibgp 8",
            " neighbor 10.0.0.1 remote-as 64512",
            " neighbor 10.0.0.1 description calico node-1",
            "!",
            "end",
            "ns#",
        ]
        saved = sim.saved()
        assert saved.features["BGP"]
        assert saved.zebos.bgp is not None
        assert saved.zebos.bgp.neighbors == {"10.0.0.1": Neighbor("10.0.0.1", 64512, "calico node-1")}
        assert non_blank(sim.journal()) == [
            "enable ns feature BGP",
            "vtysh",
            "configure terminal",
            "router bgp 500",
            "neighbor 10.0.0.1 remote-as 64512",
            "neighbor 10.0.0.1 description calico node-1",
            "end",
            "show running-config",
            "exit",
            "save ns config",
        ]

    @pytest.mark.parametrize("enter", ["\n", "\r\n"])
    def test_each_enter_is_one_line(self, start: StartSimulator, connect: Connect, enter: str) -> None:
        """One blank line (netmiko's prompt probe) and the command: CR LF is not two lines."""
        sim = start()
        conn = connect(sim, default_enter=enter)
        sim.clear_journal()

        conn.send_command("enable ns feature BGP")

        assert [entry.text for entry in sim.journal()] == ["", "enable ns feature BGP"]

    def test_errors_stay_in_the_output(self, start: StartSimulator, connect: Connect) -> None:
        conn = connect(start())

        nscli = conn.send_command("enable ns feature NOPE")
        conn.send_command("vtysh", expect_string=r"ns#")
        conn.send_command("conf t", expect_string=r"ns\(config\)#")
        refused = conn.send_command("router bgp 500")

        assert (nscli, refused) == ("ERROR: No such feature", "% BGP feature is not enabled\nns(config)#")

    def test_send_config_set_works_inside_vtysh(self, start: StartSimulator, connect: Connect) -> None:
        """With config mode handling off, each command waits for its echo and a `#` prompt."""
        sim = start()
        conn = connect(sim)
        conn.send_command("enable ns feature BGP")
        conn.send_command("vtysh", expect_string=r"ns#")

        output = conn.send_config_set(
            ["configure terminal", "router bgp 500", "neighbor 10.0.0.1 remote-as 64512", "end"],
            enter_config_mode=False,
            exit_config_mode=False,
        )

        bgp = sim.running().zebos.bgp
        assert bgp is not None
        assert list(bgp.neighbors) == ["10.0.0.1"]
        assert output.rstrip().endswith("ns#")
        assert "%" not in output

    def test_seeded_config_is_shown_verbatim(self, start: StartSimulator, connect: Connect) -> None:
        conn = connect(start(DeviceProfile(zebos_config=REFERENCE_RUNNING_CONFIG)))
        conn.send_command("vtysh", expect_string=r"ns#")

        assert conn.send_command("show running-config") == REFERENCE_RUNNING_CONFIG + "\nns#"

    def test_a_wrong_password_is_refused(self, start: StartSimulator, connect: Connect) -> None:
        sim = start()

        with pytest.raises(NetmikoAuthenticationException):
            connect(sim, password="wrong")
        assert sim.logins == 0

    def test_refused_logins_look_like_wrong_credentials(
        self, start: StartSimulator, connect: Connect
    ) -> None:
        sim = start()
        sim.refuse_logins()

        with pytest.raises(NetmikoAuthenticationException):
            connect(sim)

    def test_an_authorized_key_logs_in(self, start: StartSimulator, connect: Connect, tmp_path: Path) -> None:
        """The password is wrong on purpose: only the key can have let the session in."""
        authorized, stranger = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
        for name, key in (("authorized", authorized), ("stranger", stranger)):
            key.write_private_key(tmp_path / name)
        public = authorized.export_public_key().decode()
        sim = start(authorized_keys=[public])

        conn = connect(sim, password="wrong", use_keys=True, key_file=str(tmp_path / "authorized"))
        with pytest.raises(NetmikoAuthenticationException):
            connect(sim, password="wrong", use_keys=True, key_file=str(tmp_path / "stranger"))
        assert (conn.send_command("show ns feature").count("\n"), sim.logins) == (2 + 44 - 1, 1)

    def test_a_changed_host_key_is_refused(
        self, start: StartSimulator, connect: Connect, tmp_path: Path
    ) -> None:
        """netmiko reports paramiko's BadHostKeyException as a NetmikoTimeoutException."""
        sim, impostor = start(), start()
        known_hosts = tmp_path / f"known_hosts-{sim.port}"
        known_hosts.write_text(known_hosts_entry(sim.host, sim.port, impostor.host_public_key) + "\n")

        with pytest.raises(NetmikoTimeoutException, match="does not match"):
            connect(sim)
        assert sim.logins == 0

    def test_an_unknown_host_is_refused(
        self, start: StartSimulator, connect: Connect, tmp_path: Path
    ) -> None:
        sim = start()

        with pytest.raises(NetmikoTimeoutException, match="not found in known_hosts"):
            connect(sim, alt_key_file=str(tmp_path / "empty_known_hosts"))

    def test_the_host_key_survives_a_restart(self, tmp_path: Path) -> None:
        path = tmp_path / "keys" / "adc-1"
        with NetScalerSimulator(host_key_path=path) as first:
            key = first.host_public_key
        with NetScalerSimulator(host_key_path=path) as second:
            again = second.host_public_key

        assert (again, key.startswith("ssh-ed25519 AAAA"), stat.S_IMODE(path.stat().st_mode)) == (
            key,
            True,
            0o600,
        )

    @pytest.mark.parametrize(
        ("mode", "text", "expected"),
        [
            ("nscli", None, "ERROR: No such command"),
            ("nscli", "ERROR: Not licensed", "ERROR: Not licensed"),
            ("vtysh", "% Maximum number of neighbors reached", "% Maximum number of neighbors reached\nns#"),
        ],
    )
    def test_a_rejected_line_shows_the_device_text(
        self, start: StartSimulator, connect: Connect, mode: str, text: str | None, expected: str
    ) -> None:
        sim = start()
        conn = connect(sim)
        if mode == "vtysh":
            conn.send_command("vtysh", expect_string=r"ns#")
        sim.reject_line(r"sh(ow)? .*", text)

        output = conn.send_command("show ns feature" if mode == "nscli" else "show running-config")

        assert (output, sim.journal()[-1].fault) == (expected, "rejected")

    @pytest.mark.parametrize("how", ["channel", "transport"])
    def test_a_dropped_connection_is_seen_by_the_client(
        self, start: StartSimulator, connect: Connect, how: DropHow
    ) -> None:
        """netmiko does not notice the close while reading: it times out, then is_alive() is False."""
        sim = start()
        conn = connect(sim)
        sim.drop_on(r"save ns config", how=how)

        with pytest.raises(ReadTimeout):
            conn.send_command("save ns config", read_timeout=1)
        assert (conn.is_alive(), sim.journal()[-1].fault) == (False, "dropped")
        with pytest.raises(OSError, match="Socket is closed"):
            conn.send_command("show ns feature")

    def test_drop_after_lets_that_many_lines_through(self, start: StartSimulator, connect: Connect) -> None:
        sim = start(DeviceProfile(features={"BGP": True}))
        conn = connect(sim)
        conn.send_command("vtysh", expect_string=r"ns#")
        conn.send_command("conf t", expect_string=r"ns\(config\)#")
        sim.drop_after(2)

        conn.send_command("router bgp 500", expect_string=r"ns\(config-router\)#")
        conn.send_command("neighbor 10.0.0.1 remote-as 64512")
        with pytest.raises(ReadTimeout):
            conn.send_command("neighbor 10.0.0.2 remote-as 64512", read_timeout=1)

        bgp = sim.running().zebos.bgp
        assert bgp is not None
        assert list(bgp.neighbors) == ["10.0.0.1"]

    def test_a_slow_reply_times_the_client_out(self, start: StartSimulator, connect: Connect) -> None:
        """The echo is not delayed, so netmiko gets past its echo check and waits for the prompt."""
        sim = start()
        conn = connect(sim)
        sim.delay_replies(5, r"show ns feature")

        with pytest.raises(ReadTimeout, match="Pattern not detected"):
            conn.send_command("show ns feature", read_timeout=0.5)
        assert sim.journal()[-1].fault == "delayed"

    def test_simulators_keep_their_own_state(self, start: StartSimulator, connect: Connect) -> None:
        first, second = start(), start(DeviceProfile(prompt="adc-2>"))

        connect(first).send_command("enable ns feature BGP")
        prompt = connect(second).base_prompt

        assert (first.running().features["BGP"], second.running().features["BGP"], prompt) == (
            True,
            False,
            "adc-2",
        )
        assert first.port != second.port


class TestStateApi:
    """Tests and the lab seed and inspect a simulator without SSH."""

    def test_reboot_loses_unsaved_changes(self, start: StartSimulator) -> None:
        sim = start()
        sim.load_zebos("router bgp 500\n neighbor 10.0.0.1 remote-as 64512\n!")
        sim.set_feature("bgp", True)
        sim.save()
        sim.set_zebos(ZebosConfig())
        sim.set_feature("BGP", False)

        sim.reboot()

        running = sim.running()
        assert running.features["BGP"]
        assert running.zebos.bgp is not None
        assert list(running.zebos.bgp.neighbors) == ["10.0.0.1"]

    def test_each_save_is_told_with_what_it_stored(self, start: StartSimulator) -> None:
        sim = start()
        saves: list[DeviceConfig] = []
        sim.on_save(saves.append)
        sim.load_zebos("router bgp 500\n neighbor 10.0.0.1 remote-as 64512\n!")
        sim.save()
        sim.on_save(None)
        sim.save()

        assert [save.zebos == sim.running().zebos for save in saves] == [True]

    def test_snapshots_are_copies(self, start: StartSimulator) -> None:
        sim = start()

        sim.running().features["BGP"] = True

        assert sim.running().features["BGP"] is False

    def test_session_states_reject_unknown_names(self, start: StartSimulator) -> None:
        with pytest.raises(ValueError, match="unknown BGP state"):
            start().set_bgp_session("10.0.0.1", "Up")
