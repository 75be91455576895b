"""Hostile input the contract must refuse with a one-line reason: identifiers with a trailing
newline, stats of the wrong shape, out-of-range or non-finite stats, non-string versions."""

from __future__ import annotations

import json

import pytest

from edge.contract import ClipChunk, ContractError, Detection, Topics, check_device_id
from tests.edge.contract.test_contract_detection import NOW, golden_detection


def _body(**changes) -> dict:
    body = json.loads(golden_detection().to_payload())
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("key", "value"),
    [("id", "det-2\n"), ("device_id", "yh-brno-3\n"), ("encoder_version", "enc-1\n"),
     ("detector_version", "det-1\n")],
)  # fmt: skip
def test_identifiers_and_versions_with_a_trailing_newline_are_refused(key, value):
    with pytest.raises(ContractError) as exc:
        Detection.from_payload(json.dumps(_body(**{key: value})).encode(), None, now=NOW)
    assert "\n" not in str(exc.value)  # a one-line reason
    assert key in str(exc.value) or "not usable" in str(exc.value)


def test_device_ids_topics_and_clip_hashes_with_a_trailing_newline_are_refused():
    with pytest.raises(ContractError):
        check_device_id("dev1\n")
    with pytest.raises(ContractError):
        Topics().parse("yh/v1/dev1\n/detections")
    assert Topics().parse("yh/v1/dev1/detections") == ("dev1", "detections")
    (piece,) = ClipChunk.split("dev1", "det-1", "wav", 24000, b"RIFF" + bytes(50), 60000)
    with pytest.raises(ContractError, match="sha256"):
        ClipChunk(**{**{k: getattr(piece, k) for k in piece.__slots__}, "sha256": piece.sha256 + "\n"})
