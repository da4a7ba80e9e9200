"""The state file loader: every problem is one line naming file:line:column and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from peeringd.adapters import statefile
from peeringd.errors import StateFileError
from tests.support import REPO

VALID = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster:
  name: prod-1
  podCIDR: 192.168.0.0/16
  asNumber: 64512
adcs:
  - name: adc-1
    asNumber: 500
    peerIP: 10.102.33.208
    ssh:
      host: 10.102.33.208
      username: nsroot
      passwordFile: secrets/adc-1.password
"""


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "peering.yaml"
    path.write_text(text)
    with pytest.raises(StateFileError) as caught:
        statefile.load(path)
    return [str(problem).removeprefix(f"{path}:") for problem in caught.value.problems]


def test_the_example_state_file_is_valid() -> None:
    loaded = statefile.load(REPO / "state" / "peering.yaml")

    assert (loaded.state.cluster.name, [adc.name for adc in loaded.state.adcs]) == ("prod-1", ["adc-1"])


def test_relative_secret_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "peering.yaml"
    path.write_text(VALID)

    assert statefile.load(path).state.adcs[0].ssh.password_file == tmp_path / "secrets" / "adc-1.password"


def test_unquoted_asdot_keeps_its_digits(tmp_path: Path) -> None:
    """YAML reads 1.10 as the float 1.1; the loader keeps the text, so it is AS 65546, not 65537."""
    path = tmp_path / "peering.yaml"
    path.write_text(VALID.replace("asNumber: 500", "asNumber: 1.10"))

    assert statefile.load(path).state.adcs[0].as_number == 65546


def test_the_content_hash_identifies_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "peering.yaml"
    path.write_text(VALID)
    first = statefile.load(path).sha256
    path.write_text(VALID + "# a comment\n")

    assert first != statefile.load(path).sha256


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda t: "", ["1:1: the file is empty"], id="empty"),
        pytest.param(
            lambda t: t[:40],
            ["1:1: cluster: is required", "2:7: kind: Input should be 'PeeringState', not 'PeeringSta'"],
            id="truncated",
        ),
        pytest.param(
            lambda t: t.replace("name: adc-1", "name: [adc-1"),
            ["9:13: invalid YAML: expected ',' or ']', but got ':'"],
            id="broken-yaml",
        ),
        pytest.param(
            lambda t: "- a\n- b\n",
            ["1:1: the file must be a mapping with apiVersion, kind, cluster, adcs"],
            id="top-level-list",
        ),
        pytest.param(
            lambda t: t.replace("asNumber: 64512", "asNumber: sixty"),
            ["6:13: cluster.asNumber: 'sixty' is not an AS number (write 64512 or asdot 1.10)"],
            id="wrong-type",
        ),
        pytest.param(
            lambda t: t.replace("asNumber: 500", "asNumber: 4200000000"),
            [
                "9:15: adcs[0].asNumber: 4200000000 cannot be stored by Calico, whose CRDs hold AS "
                "numbers as 32-bit signed integers (at most 2147483647)"
            ],
            id="as-above-int32",
        ),
        pytest.param(
            lambda t: t.replace("name: prod-1", 'name: "prod-1\\nrouter bgp 1"'),
            [
                "4:9: cluster.name: 'prod-1\\nrouter bgp 1' is not a lower-case DNS label "
                "(a-z, 0-9, '-', at most 63)"
            ],
            id="newline-injection",
        ),
        pytest.param(
            lambda t: t.replace("username: nsroot", 'username: "nsroot; rm"'),
            ["13:17: adcs[0].ssh.username: 'nsroot; rm' is not a user name (letters, digits, '.', '_', '-')"],
            id="username-injection",
        ),
        pytest.param(
            lambda t: t.replace("- name: adc-1", "- name: ADC 1"),
            ["8:11: adcs[0].name: 'ADC 1' is not a lower-case DNS name (a-z, 0-9, '-', '.', at most 253)"],
            id="name-with-space",
        ),
        pytest.param(
            lambda t: (
                t + "  - name: adc-1\n    asNumber: 500\n    peerIP: 10.102.33.208\n"
                "    ssh: {host: 10.102.33.209, username: u, keyFile: k}\n"
            ),
            [
                "15:11: adcs[1].name: 'adc-1' is also adcs[0]",
                "17:13: adcs[1].peerIP: 10.102.33.208 is also adcs[0]'s peerIP; Calico would keep only one",
            ],
            id="duplicates",
        ),
        pytest.param(
            lambda t: t.replace("podCIDR: 192.168.0.0/16", "podCIDR: 192.168.0.0/16\n  podCIDR: 10.0.0.0/8"),
            [
                '6:3: invalid YAML: found duplicate key "podCIDR" with value "10.0.0.0/8" '
                '(original value: "192.168.0.0/16")'
            ],
            id="duplicate-key",
        ),
        pytest.param(
            lambda t: t.replace("    ssh:", "    sssh: 1\n    ssh:"),
            ["11:11: adcs[0].sssh: is not a field of peeringd/v1 (misspelt?)"],
            id="unknown-field",
        ),
        pytest.param(
            lambda t: t.replace("passwordFile: secrets/adc-1.password", "port: 22"),
            ["12:7: adcs[0].ssh: needs passwordFile or keyFile"],
            id="no-credentials",
        ),
        pytest.param(
            lambda t: t + "policy:\n  interval: soon\n",
            ["16:13: policy.interval: 'soon' is not a duration (write 60s, 5m or 1h30m)"],
            id="interval",
        ),
        pytest.param(
            lambda t: t.replace("10.102.33.208\n    ssh", "192.168.4.1\n    ssh"),
            ["10:13: adcs[0].peerIP: 192.168.4.1 lies inside the pod network 192.168.0.0/16"],
            id="peer-in-pod-network",
        ),
        pytest.param(
            lambda t: t.replace("asNumber: 64512", "asNumber: 64512\n  nodes: {selector: 'a b'}"),
            ["7:21: cluster.nodes.selector: 'a b' is not a Kubernetes label selector term"],
            id="selector",
        ),
    ],
)
def test_bad_files_name_line_column_and_field(edit: object, expected: list[str], tmp_path: Path) -> None:
    assert expected == problems(edit(VALID), tmp_path)  # type: ignore[operator]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "peering.yaml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(StateFileError, match=r"peering.yaml:1:1: not UTF-8 text"):
        statefile.load(path)


def test_missing_file_is_a_state_file_error(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="cannot read: No such file or directory"):
        statefile.load(tmp_path / "absent.yaml")


def test_locate_points_later_errors_at_the_field(tmp_path: Path) -> None:
    path = tmp_path / "peering.yaml"
    path.write_text(textwrap.dedent(VALID))
    loaded = statefile.load(path)

    assert str(loaded.locate(("adcs", 0, "ssh", "passwordFile"), "no such file")) == (
        f"{path}:14:21: adcs[0].ssh.passwordFile: no such file"
    )
