"""Hostile input the contract must refuse with a one-line reason: identifiers with a trailing
newline, stats of the wrong shape, out-of-range or non-finite stats, non-string versions."""

from __future__ import annotations

import json
import sqlite3

import pytest

from edge.contract import ClipChunk, ContractError, Detection, Stats, Topics, check_device_id
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


def _stats(fields: str = "", head: str = '{"schema":1,"device_id":"dev2"') -> Stats:
    """Stats of ``dev2`` received at ``NOW`` with the JSON ``fields`` after its head."""
    return Stats.from_payload((head + ("," + fields if fields else "") + "}").encode(), "dev2", now=NOW)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [('"store":[1]', "field 'store' must be an object, got list"),
     ('"store":"broken"', "field 'store' must be an object, got str"),
     ('"health":7', "field 'health' must be an object"),
     ('"publisher":[]', "field 'publisher' must be an object"),
     ('"clips":true', "field 'clips' must be an object"),
     ('"deployment":[49,16]', "field 'deployment' must be an object"),
     ('"store":{"unsynced":"5"}', "'store.unsynced' must be a non-negative integer"),
     ('"store":{"unsynced":-1}', "'store.unsynced' must be a non-negative integer")],
)  # fmt: skip
def test_stats_fields_the_server_reads_must_have_their_shape(fields, reason):
    with pytest.raises(ContractError) as exc:
        _stats(fields)
    assert reason in str(exc.value) and "\n" not in str(exc.value)


def test_stats_of_the_expected_shape_are_kept():
    st = _stats(f'"time":{NOW!r},"store":{{"unsynced":3,"counters":{{}}}},"health":{{"x":1.5}},"publisher":{{}},'
                '"clips":null,"deployment":{"latitude":49.0,"longitude":16.0},"new":[1]')  # fmt: skip
    assert (st.device_id, st.time, st.body["store"]["unsynced"], st.deployment.latitude) == (
        "dev2",
        NOW,
        3,
        49.0,
    )


@pytest.mark.parametrize("t", ["1e300", "-1e300", "0", repr(NOW + 2 * 86400)])
def test_stats_from_a_wrong_clock_are_kept_at_the_receive_time(t):
    s = _stats(f'"time":{t},"deployment":{{"latitude":1.0,"longitude":2.0}}')
    assert s.time == NOW and s.body["device_time"] == float(t)
    assert s.deployment.latitude == 1.0


@pytest.mark.parametrize("t", ['"soon"', "true", "[1]"])
def test_stats_time_that_is_not_a_number_is_refused(t):
    with pytest.raises(ContractError, match="must be a number"):
        _stats(f'"time":{t}')


def test_stats_time_within_range_is_kept_and_an_absent_one_is_the_receive_time():
    assert _stats(f'"time":{NOW - 3600!r}').time == NOW - 3600
    assert _stats(f'"time":{NOW + 3600!r}').time == NOW + 3600
    assert _stats().time == NOW
    assert _stats('"time":null', head='{"device_id":"dev2"').time == NOW  # the earliest devices


@pytest.mark.parametrize(
    ("fields", "path"),
    [('"x":1e999', "'x'"), ('"health":{"a":[1,-1e999]}', "'health.a[1]'"),
     ('"x":[[[{"y":[1E400]}]]]', "'x[0][0][0].y[0]'"), ('"time":1e999', "'stats time'")],
)  # fmt: skip
def test_stats_with_a_non_finite_number_anywhere_are_refused(fields, path):
    with pytest.raises(ContractError) as exc:
        _stats(fields)
    assert path in str(exc.value) and "finite" in str(exc.value)
    with pytest.raises(ContractError, match="not valid Unicode"):
        _stats('"x":"\\ud800"')


def test_edge_rows_that_cannot_become_payloads_are_errors_not_crashes(tmp_path):
    from edge.contract.edgedb import read_messages
    from tests.sync.helpers import fill_store

    db = tmp_path / "edge.sqlite"
    fill_store(db, "dev1", 5)
    c = sqlite3.connect(db)
    with c:
        c.execute("UPDATE detections SET extra = '[1]' WHERE rowid = 1")
        c.execute("UPDATE detections SET score = 'abc' WHERE rowid = 2")
        c.execute("UPDATE detections SET source = X'6162' WHERE rowid = 3")
    c.close()
    (batch,) = list(read_messages(db))
    out = [p for _, p in batch]
    errors = [str(p) for p in out if isinstance(p, ContractError)]
    assert len(out) == 5 and sum(isinstance(p, bytes) for p in out) == 2
    assert sorted(errors) == ["edge row cannot be read (ValueError: extra is a JSON list, not an object)",
                              "edge row: column 'score' holds text, not real",
                              "edge row: column 'source' holds a blob, not text"]  # fmt: skip
    with pytest.raises(ValueError, match="not an object"):
        Detection.from_row({**golden_detection().to_row(), "extra": '"abc"'})


@pytest.mark.parametrize(
    ("value", "kind"), [(0, "int"), (False, "bool"), ([], "list"), ({}, "dict"), (1.5, "float")]
)
def test_a_detector_version_that_is_not_a_string_is_refused(value, kind):
    with pytest.raises(ContractError, match=f"'detector_version' must be a string, got {kind}"):
        Detection.from_payload(json.dumps(_body(detector_version=value)).encode(), None, now=NOW)


def test_an_absent_null_or_empty_detector_version_is_empty():
    body = _body()
    assert Detection.from_payload(body, None, now=NOW).detector_version == "detector-20261124-0dd199cf"
    for value in (None, ""):
        assert Detection.from_payload(_body(detector_version=value), None, now=NOW).detector_version == ""
    body.pop("detector_version")
    assert Detection.from_payload(body, None, now=NOW).detector_version == ""
