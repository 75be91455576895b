"""Clip pieces, clip requests, the deployment in stats and the digest's clip list."""

from __future__ import annotations

import hashlib
import json

import pytest

from edge.contract import MAX_PAYLOAD_BYTES, ClipChunk, ClipRequest, ContractError, Deployment, Digest, Stats


def test_a_clip_splits_into_bounded_pieces_that_decode_and_reassemble():
    data = bytes(range(256)) * 700  # 179 kB
    pieces = ClipChunk.split("yh-1", "song-1", "wav", 24000, data, 32 * 1024)
    assert len(pieces) == 6 and {p.n for p in pieces} == {6}
    payloads = [p.to_payload() for p in pieces]
    assert max(len(p) for p in payloads) < MAX_PAYLOAD_BYTES
    back = [ClipChunk.from_payload(p, "yh-1") for p in payloads]
    assert b"".join(b.data for b in sorted(back, key=lambda b: b.seq)) == data
    assert back[0].sha256 == hashlib.sha256(data).hexdigest() and back[3].offset == 3 * 32 * 1024


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"codec": "mp3"}, "not supported"),
        ({"seq": 6}, "not in 0..n-1"),
        ({"size": 10}, "outside the clip"),
        ({"sha256": "abc"}, "64 lower-case hex"),
        ({"rate": 100}, "4000..192000"),
        ({"device_id": "other"}, "does not match the topic"),
        ({"detection_id": "a/b"}, "not usable"),
        ({"schema": 9}, "unknown schema"),
        ({"n": 0}, "not in 0..n-1"),
    ],
)
def test_hostile_clip_pieces_are_refused(change, reason):
    p = ClipChunk.split("yh-1", "song-1", "wav", 24000, b"x" * 5000, 1000)[2]
    head, _, data = p.to_payload().partition(b"\n")
    body = {**json.loads(head), **change}
    with pytest.raises(ContractError, match=reason):
        ClipChunk.from_payload(json.dumps(body).encode() + b"\n" + data, "yh-1")


def test_clip_messages_without_header_or_too_big_are_refused():
    with pytest.raises(ContractError, match="header line"):
        ClipChunk.from_payload(b"RIFF....", "yh-1")
    with pytest.raises(ContractError, match="exceeds"):
        ClipChunk.from_payload(b"{}\n" + b"x" * MAX_PAYLOAD_BYTES, "yh-1")


def test_clip_request_and_digest_clip_list():
    assert ClipRequest.from_payload(ClipRequest(("a", "b")).to_payload()).ids == ("a", "b")
    with pytest.raises(ContractError):
        ClipRequest.from_payload(b'{"schema":1,"ids":["a b"]}')
    d = Digest("yh-1", 3600, ((1, 2),), 5.0, ("s1", "s2"))
    assert Digest.from_payload(d.to_payload(), "yh-1").clips == ("s1", "s2")
    old = Digest("yh-1", 3600, ((1, 2),), 5.0)
    assert b"clips" not in old.to_payload() and Digest.from_payload(old.to_payload(), "yh-1").clips == ()


def test_deployment_in_stats():
    dep = Deployment(
        latitude=49.2, longitude=16.6, elevation_m=230.0, site="Kraví hora", microphone="USB", start=1.7e9
    )
    st = Stats("yh-1", 1.7e9, {"store": {}, "deployment": dep.to_dict()})
    assert Stats.from_payload(st.to_payload(), "yh-1").deployment == dep
    assert Stats.from_payload(Stats("yh-1", 1.7e9, {}).to_payload(), "yh-1").deployment is None
    for bad, reason in (({"latitude": 91, "longitude": 0}, "outside"), ({"latitude": 1.0}, "both"),
                        ({"site": "a\x07"}, "control"), ({"start": 10, "end": 5}, "before its start")):  # fmt: skip
        with pytest.raises(ContractError, match=reason):
            Stats.from_payload(Stats("yh-1", 1.7e9, {"deployment": bad}).to_payload(), "yh-1")
