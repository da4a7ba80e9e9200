"""The state file loader: every problem is one line naming file:line:column and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings

from peeringd.adapters import statefile
from peeringd.errors import StateFileError
from tests.reliability import statefiles
from tests.reliability.runner import Case
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
            [
                "2:17: the last line ('kind: PeeringSta') has no newline at its end: the file may "
                "have been cut off while being written; end it with a newline"
            ],
            id="cut-mid-line",
        ),
        pytest.param(
            lambda t: t[: t.index("adcs:")],
            ["1:1: adcs: is required (write adcs: [] for none)"],
            id="cut-before-adcs",
        ),
        pytest.param(
            lambda t: t[: t.index("cluster:")],
            ["1:1: cluster: is required", "1:1: adcs: is required (write adcs: [] for none)"],
            id="cut-before-cluster",
        ),
        pytest.param(
            lambda t: t[: t.index("  - name")],
            ["7:6: adcs: has no value (write adcs: [] for none)"],
            id="cut-after-adcs-key",
        ),
        pytest.param(
            lambda t: t.replace("name: adc-1", "name: [adc-1"),
            ["9:13: invalid YAML: did not find expected ',' or ']'"],
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
            ["6:3: cluster.podCIDR: appears twice (first on line 5)"],
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


def test_no_adcs_is_written_as_an_empty_list(tmp_path: Path) -> None:
    """``adcs: []`` is how a file says it has no ADCs (omitting the key is an error)."""
    path = tmp_path / "peering.yaml"
    path.write_text(VALID[: VALID.index("adcs:")] + "adcs: []\n")

    no_adcs: tuple[object, ...] = ()

    assert no_adcs == statefile.load(path).state.adcs


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


def refusal(content: bytes) -> list[str]:
    """What the loader says about ``content``, without the file name."""
    with pytest.raises(StateFileError) as caught:
        statefile.parse(content, "f.yaml")
    return [str(problem).removeprefix("f.yaml:") for problem in caught.value.problems]


HEAD = "apiVersion: peeringd/v1\nkind: PeeringState\ncluster: {name: a, podCIDR: 10.0.0.0/8, asNumber: 1}\n"
ALIAS_BOMB = HEAD + "".join(
    f"l{level}: &l{level} [{', '.join([f'*l{level - 1}' if level else '0'] * 9)}]\n" for level in range(10)
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            ALIAS_BOMB.encode(),
            ["4:5: anchor &l0: anchors and aliases are not allowed; write the value out"],
            id="alias-bomb",
        ),
        pytest.param(
            (HEAD + "adcs: *x\n").encode(),
            ["4:7: alias *x: anchors and aliases are not allowed; write the value out"],
            id="alias",
        ),
        pytest.param(
            (HEAD + "adcs: []\npolicy:\n  <<: {mode: observe}\n").encode(),
            ["6:3: policy: merge keys (<<) are not allowed"],
            id="merge-key",
        ),
        pytest.param(
            (HEAD + "adcs: !!python/object/apply:os.system [true]\n").encode(),
            [
                "4:7: tag tag:yaml.org,2002:python/object/apply:os.system: tags are not allowed; "
                "the schema decides each type"
            ],
            id="python-tag",
        ),
        pytest.param(
            (HEAD + "adcs: []\npolicy: {mode: !!binary b2JzZXJ2ZQ==}\n").encode(),
            ["5:16: tag tag:yaml.org,2002:binary: tags are not allowed; the schema decides each type"],
            id="binary-tag",
        ),
        pytest.param(
            (HEAD + "adcs: !local []\n").encode(),
            ["4:7: tag !local: tags are not allowed; the schema decides each type"],
            id="custom-tag",
        ),
        pytest.param(
            (HEAD + "adcs: []\n? [policy]\n: {}\n").encode(),
            ["5:3: a key must be a name, not a list or mapping"],
            id="complex-key",
        ),
        pytest.param(
            (HEAD + "adcs: []\n{policy: 1}: {}\n").encode(),
            ["5:1: a key must be a name, not a list or mapping"],
            id="flow-mapping-key",
        ),
        pytest.param(
            (HEAD + "adcs: []\n---\n" + HEAD + "adcs: []\n").encode(),
            ["5:1: a second YAML document: a state file is one document"],
            id="two-documents",
        ),
        pytest.param(
            ("%YAML 1.1\n---\n" + HEAD + "adcs: []\n").encode(),
            ["1:1: directives (%YAML, %TAG) are not allowed: the file is YAML 1.2"],
            id="yaml-1.1-directive",
        ),
        pytest.param(
            (HEAD + "adcs: []\n").encode("utf-16"),
            ["1:1: the file is UTF-16 text: save it as UTF-8"],
            id="utf-16",
        ),
        pytest.param(
            HEAD.encode() + b"adcs: []\n# caf\xe9\n",
            ["5:6: not UTF-8 text (bytes e9): save the file as UTF-8"],
            id="latin-1",
        ),
        pytest.param(
            HEAD.encode() + "adcs: [] # d\u00e9j\u00e0 vu \u2014 ".encode() + b"\xe9\n",
            ["4:22: not UTF-8 text (bytes e9): save the file as UTF-8"],
            id="latin-1-after-utf-8",
        ),
        pytest.param(
            (HEAD + "adcs: []\npolicy: {mode: observe\x07}\n").encode(),
            ["5:23: control character U+0007 is not allowed"],
            id="control-character",
        ),
        pytest.param(
            (HEAD + "adcs: [] # \u202e} :edom\n").encode(),
            [
                "4:12: character U+202E (RIGHT-TO-LEFT OVERRIDE) is not allowed: it makes the file "
                "show otherwise than it loads"
            ],
            id="bidi-override",
        ),
        pytest.param(
            (HEAD + "adcs: []\ufeff\n").encode(),
            ["4:9: a byte-order mark (U+FEFF) belongs only at the start of the file"],
            id="bom-inside",
        ),
        pytest.param(
            (HEAD + "adcs: []\rpolicy: {}\n").encode(),
            ["4:9: a carriage return without a line feed: end lines with LF or CRLF"],
            id="lone-carriage-return",
        ),
        pytest.param(
            (HEAD + "adcs: []\npolicy:\n\tmode: observe\n").encode(),
            [
                "6:1: invalid YAML: found character that cannot start any token "
                "(YAML indents with spaces, not tabs)"
            ],
            id="tab-indent",
        ),
        pytest.param(
            HEAD.replace("asNumber: 1}", "asNumber: 1, nodes: {exclude: [[a]]}}").encode() + b"adcs: []\n",
            ["3:72: cluster.nodes.exclude[0]: nested deeper than peeringd/v1 allows (4 levels)"],
            id="deeper-than-the-schema",
        ),
        pytest.param(
            (HEAD + "adcs: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
            ["4:10: adcs[0][0][0]: nested deeper than peeringd/v1 allows (4 levels)"],
            id="deep-flow-nesting",
        ),
        pytest.param(
            (HEAD + "adcs: []\n" + "#" * statefile.MAX_BYTES + "\n").encode(),
            ["1:1: the file is over 1 MiB, more than any state file needs"],
            id="over-1-MiB",
        ),
        pytest.param(
            (HEAD + "adcs: []\npolicy: {mode: " + "x" * 5000 + "}\n").encode(),
            ["5:16: policy.mode: a value of 5000 characters (at most 4096)"],
            id="huge-value",
        ),
        pytest.param(
            (HEAD + "adcs: []\npolicy: {mode: " + "x" * 300 + "}\n").encode(),
            [
                "5:16: policy.mode: Input should be 'enforce' or 'observe', not 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'"
            ],
            id="long-value-clipped",
        ),
        pytest.param(
            (HEAD + 'adcs: []\n1: a\n"x\\ny": b\n').encode(),
            [
                "5:4: 1: is not a field of peeringd/v1 (misspelt?)",
                "6:9: 'x\\ny': is not a field of peeringd/v1 (misspelt?)",
            ],
            id="odd-keys",
        ),
        pytest.param(
            (
                HEAD.replace("{name: a,", "{name: a, kubeconfigContext: x,")
                + "adcs:\n  - {name: r, asNumber: 1, peerIP: 1.1.1.1, "
                'ssh: {host: r, username: u, keyFile: "k\\0"}}\n'
            ).encode(),
            ["5:82: adcs[0].ssh.keyFile: 'k\\x00' holds a control character"],
            id="control-character-in-a-path",
        ),
    ],
)
def test_yaml_a_state_file_does_not_need_is_refused_where_it_stands(
    content: bytes, expected: list[str]
) -> None:
    assert expected == refusal(content)


def test_a_utf8_byte_order_mark_is_allowed() -> None:
    """Windows editors write one; YAML allows it at the start, and it moves no position."""
    loaded = statefile.parse(b"\xef\xbb\xbf" + (HEAD + "adcs: []\n").encode(), "f.yaml")

    assert (loaded.state.cluster.name, loaded.positions[("adcs",)]) == ("a", (4, 7))


def test_crlf_line_endings_load_like_lf() -> None:
    """Files from Windows checkouts read the same, at the same positions."""
    text = HEAD + "adcs: []\npolicy: {mode: observe}\n"
    lf = statefile.parse(text.encode(), "f.yaml")
    crlf = statefile.parse(text.replace("\n", "\r\n").encode(), "f.yaml")

    assert (lf.state, lf.positions) == (crlf.state, crlf.positions)


def test_plain_scalars_are_typed_as_yaml_1_2_types_them() -> None:
    """yes/on stay text (StrictBool refuses them), 0o26 is 22, and a quoted number is text."""
    expected = [
        "5:22: policy.allowEmpty: Input should be a valid boolean, not 'yes'",
        "6:14: policy.maxDeletes: Input should be a valid integer, not '3'",
    ]
    text = HEAD + "adcs: []\npolicy: {allowEmpty: yes,\n maxDeletes: '3', interval: 0o26}\n"

    assert expected == refusal(text.encode())


@settings(max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@seed(20261)
@given(statefiles.cases())
def test_generated_and_mutated_files_load_as_written_or_are_refused_at_a_position(
    case: Case[tuple[bytes, dict[str, object]]],
) -> None:
    """A seeded few hundred of the fuzz script's cases (tests/reliability/fuzz_statefile.py)."""
    statefiles.check(case)


class TestBgpPassword:
    """adcs[].bgpPassword: read from its file by every command, checked by validate when readable."""

    TEXT = VALID + "    bgpPassword: {file: secrets/adc-1.bgp}\n"

    def write(self, tmp_path: Path, password: str | None) -> Path:
        (tmp_path / "secrets").mkdir(exist_ok=True)
        if password is not None:
            (tmp_path / "secrets" / "adc-1.bgp").write_text(password)
        path = tmp_path / "peering.yaml"
        path.write_text(self.TEXT)
        return path

    def test_is_read_relative_to_the_file_without_its_newline(self, tmp_path: Path) -> None:
        setting = statefile.load(self.write(tmp_path, "Pa55-word\n")).state.adcs[0].bgp_password

        assert setting is not None
        assert setting.file == tmp_path / "secrets" / "adc-1.bgp"
        assert setting.value is not None
        assert setting.value.reveal() == "Pa55-word"

    def test_a_missing_file_is_one_line_naming_file_and_field(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, None)
        with pytest.raises(StateFileError) as caught:
            statefile.load(path)

        assert str(caught.value) == (
            f"{path}:15:25: adcs[0].bgpPassword.file: cannot read {tmp_path}/secrets/adc-1.bgp: "
            "No such file or directory"
        )

    def test_validate_passes_a_file_it_cannot_read(self, tmp_path: Path) -> None:
        """validate may run where the secrets are not (CI, pre-commit)."""
        setting = statefile.load(self.write(tmp_path, None), secrets=False).state.adcs[0].bgp_password

        assert setting is not None
        assert setting.value is None

    @pytest.mark.parametrize("secrets", [True, False])
    def test_a_password_no_command_line_can_carry_is_refused(self, tmp_path: Path, secrets: bool) -> None:
        path = self.write(tmp_path, "two words\n")
        with pytest.raises(StateFileError) as caught:
            statefile.load(path, secrets=secrets)

        assert str(caught.value).startswith(
            f"{path}:15:25: adcs[0].bgpPassword.file: the password in {tmp_path}/secrets/adc-1.bgp "
            "holds a character"
        )
        assert "two words" not in str(caught.value)

    def test_the_password_itself_is_never_written_in_the_file(self, tmp_path: Path) -> None:
        assert problems(
            self.TEXT.replace("{file: secrets/adc-1.bgp}", "{file: x, value: s3cret}"), tmp_path
        ) == [
            "15:18: adcs[0].bgpPassword: the password itself is never written here: name a file that holds it"
        ]
