"""The peeringd command line, run as users run it: the installed console script."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from tests.support import REPO

EXAMPLE = REPO / "state" / "peering.yaml"
SNAPSHOT = REPO / "state" / "example-live.json"
PEERINGD = shutil.which("peeringd", path=str(Path(sys.executable).parent))


def peeringd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PEERINGD, "the peeringd console script is installed beside this Python"
    return subprocess.run(
        [PEERINGD, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_validate_accepts_the_example() -> None:
    result = peeringd("validate", "-f", EXAMPLE)

    assert (result.returncode, result.stderr) == (0, "")
    assert "valid (1 ADCs" in result.stdout


def test_validate_rejects_a_bad_file_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("asNumber: 500", "asNumber: 5OO"))
    result = peeringd("validate", "-f", bad)

    assert result.returncode == 1
    assert (
        result.stderr
        == f"{bad}:19:15: adcs[0].asNumber: '5OO' is not an AS number (write 64512 or asdot 1.10)\n"
    )


def test_plan_against_the_example_snapshot_shows_changes_and_exits_2() -> None:
    result = peeringd("plan", "-f", EXAMPLE, "--live", SNAPSHOT)

    assert result.returncode == 2, result.stderr
    assert (
        "  + neighbor 10.102.33.205 remote-as 64512 description peeringd:prod-1:k8s-worker-2" in result.stdout
    )
    assert result.stdout.endswith("Plan: 5 to add, 4 to change, 0 to remove.\n")


def test_plan_json_lists_typed_changes(tmp_path: Path) -> None:
    result = peeringd("plan", "-f", EXAMPLE, "--live", SNAPSHOT, "--output", "json")
    document = json.loads(result.stdout)

    assert [(c["kind"], c["action"]) for c in document["changes"]][:3] == [
        ("bgp-feature", "update"),
        ("router-bgp", "create"),
        ("neighbour", "create"),
    ]
    assert document["refusals"] == []


def test_plan_of_a_converged_snapshot_exits_0(tmp_path: Path) -> None:
    converged = json.loads(SNAPSHOT.read_text())
    planned = json.loads(peeringd("plan", "-f", EXAMPLE, "--live", SNAPSHOT, "-o", "json").stdout)
    device = converged["adcs"][0]
    device.update(bgp_feature=True, router_as=500, route_install=True, max_paths={"ebgp": 8, "ibgp": 8})
    device["neighbours"] = [
        {"address": c["address"], **c["after"]} for c in planned["changes"] if c["kind"] == "neighbour"
    ]
    converged["calico"]["peers"] = [
        {
            "name": "adc-1",
            "peer_ip": "10.102.33.208",
            "as_number": 500,
            "labels": [["app.kubernetes.io/managed-by", "peeringd"]],
            "annotations": [["peeringd.io/cluster", "prod-1"]],
        }
    ]
    path = tmp_path / "converged.json"
    path.write_text(json.dumps(converged))
    result = peeringd("plan", "-f", EXAMPLE, "--live", path)

    assert (result.returncode, result.stdout) == (0, "No changes: live state matches the file.\n")


def test_plan_with_a_pod_cidr_of_another_cluster_exits_1(tmp_path: Path) -> None:
    other = json.loads(SNAPSHOT.read_text())
    other["calico"]["pools"][0]["cidr"] = "10.244.0.0/16"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    result = peeringd("plan", "-f", EXAMPLE, "--live", path)

    assert result.returncode == 1
    assert "errors:\n  calico: podCIDR 192.168.0.0/16 matches no live IPPool" in result.stdout


def test_a_broken_snapshot_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"calico": {"api_group": 3}}')
    result = peeringd("plan", "-f", EXAMPLE, "--live", path)

    assert (result.returncode, result.stderr.count("\n")) == (1, 1)
    assert result.stderr.startswith(f"error: {path}: calico.api_group: Input should be a valid string")


def test_the_schema_validates_the_example_and_is_committed() -> None:
    """Editors use state/peering.schema.json through the example's modeline: it must be current."""
    result = peeringd("schema")
    schema = json.loads(result.stdout)
    example = YAML(typ="safe").load(EXAMPLE)

    jsonschema.validate(example, schema)
    assert (REPO / "state" / "peering.schema.json").read_text() == result.stdout
    assert EXAMPLE.read_text().startswith("# yaml-language-server: $schema=./peering.schema.json\n")


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    schema = json.loads(peeringd("schema").stdout)
    example = YAML(typ="safe").load(EXAMPLE)
    example["adcs"][0]["asNumber"] = 2147483648

    assert not jsonschema.Draft202012Validator(schema).is_valid(example)


def test_validate_takes_several_files_and_fails_when_one_is_invalid(tmp_path: Path) -> None:
    """As a pre-commit hook calls it: file names after the command, every problem reported."""
    bad = tmp_path / "peering.yaml"
    bad.write_text(EXAMPLE.read_text().replace("asNumber: 500", "asNumber: 5OO"))
    result = peeringd("validate", EXAMPLE, bad)

    assert result.returncode == 1
    assert result.stdout.startswith(f"{EXAMPLE}: valid (1 ADCs")
    assert result.stderr == (
        f"{bad}:19:15: adcs[0].asNumber: '5OO' is not an AS number (write 64512 or asdot 1.10)\n"
    )


def test_the_pre_commit_hook_validates_the_state_files_it_is_given(tmp_path: Path) -> None:
    """pre-commit runs the hook's entry with the staged files that match its `files` and `types`."""
    (hook,) = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text())
    bad = tmp_path / "peering.yaml"
    bad.write_text(EXAMPLE.read_text().replace("peerIP: 10.102.33.208", "peerIP: 10.102.33.999"))
    command, *arguments = shlex.split(hook["entry"])
    good = peeringd(*arguments, "state/peering.yaml")
    refused = peeringd(*arguments, "state/peering.yaml", bad)

    assert (hook["id"], hook["language"], command) == ("peeringd-validate", "python", "peeringd")
    assert re.search(hook["files"], "state/peering.yaml")
    assert re.search(hook["files"], "clusters/prod/peering.yml")
    assert not re.search(hook["files"], "k8s/deployment.yaml")
    assert "yaml" in hook["types"]
    assert good.returncode == 0, good.stderr
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"{bad}:20:13: adcs[0].peerIP:")


def test_bash_completes_commands_and_options_through_clicks_script() -> None:
    """The script `_PEERINGD_COMPLETE=bash_source peeringd` prints, run by a real bash."""
    assert PEERINGD is not None
    script = """
        eval "$(_PEERINGD_COMPLETE=bash_source peeringd)"
        complete -p peeringd
        COMP_WORDS=(peeringd re); COMP_CWORD=1; _peeringd_completion peeringd; echo "${COMPREPLY[@]}"
        COMPREPLY=(); COMP_WORDS=(peeringd apply --ad); COMP_CWORD=2; _peeringd_completion peeringd
        echo "${COMPREPLY[@]}"
    """
    environment = {**os.environ, "PATH": f"{Path(PEERINGD).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "--norc", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "complete -o nosort -F _peeringd_completion peeringd",
        "release",
        "--adopt",
    ]


@pytest.mark.parametrize(
    ("shell", "function", "word"),
    # zsh says which word is completed by its index, fish by its text.
    [("zsh", "#compdef peeringd", "1"), ("fish", "function _peeringd_completion", "imp")],
)
def test_zsh_and_fish_get_clicks_scripts_and_completions(shell: str, function: str, word: str) -> None:
    script = subprocess.run(
        [PEERINGD or "peeringd"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_PEERINGD_COMPLETE": f"{shell}_source"},
        check=False,
    )
    completed = subprocess.run(
        [PEERINGD or "peeringd"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "_PEERINGD_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": "peeringd imp",
            "COMP_CWORD": word,
        },
        check=False,
    )

    assert function in script.stdout
    assert "import" in re.split(r"[\s,]", completed.stdout)
