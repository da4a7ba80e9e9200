"""AS number parsing and the node-to-speaker rules."""

from __future__ import annotations

import ipaddress

import pytest

from peeringd.core import asn, live, nodes


@pytest.mark.parametrize(
    ("text", "expected"),
    [(64512, 64512), ("64512", 64512), ("1.10", 65546), ("0.500", 500), ("32768.0", 2147483648 // 1)],
)
def test_plain_and_asdot_forms(text: object, expected: int) -> None:
    assert asn.parse(text, limit=asn.MAX) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (0, "outside the AS number range"),
        (4294967296, "outside the AS number range"),
        ("1.65536", "both halves must be 0..65535"),
        ("65000 ", "is not an AS number"),
        (True, "is not an AS number"),
        (2147483648, "cannot be stored by Calico"),
    ],
)
def test_refusals_say_why(text: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        asn.parse(text)


def test_two_nodes_with_one_address_give_one_speaker() -> None:
    pair = (
        live.Node(name="b", internal_ips=("10.0.0.1",)),
        live.Node(name="a", ipv4_address_annotation="10.0.0.1/24"),
    )
    speakers, notes = nodes.speakers(pair, 64512)

    assert [s.node for s in speakers] == ["a"]
    assert notes == ("node b has the address 10.0.0.1 of node a; not peered",)


def test_invalid_as_annotation_falls_back_to_the_cluster_as() -> None:
    odd = live.Node(name="a", ipv4_address_annotation="10.0.0.1/24", as_number_annotation="65x")
    speakers, notes = nodes.speakers((odd,), 64512)

    assert speakers == (nodes.Speaker(node="a", address=ipaddress.IPv4Address("10.0.0.1"), as_number=64512),)
    assert "projectcalico.org/ASNumber ignored" in notes[0]
