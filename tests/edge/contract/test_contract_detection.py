"""The wire contract of a detection: the golden payload, the field list driving rows and payload,
and decoding of older and hostile payloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.contract import (
    FIELD_NAMES,
    FIELDS,
    ContractError,
    Detection,
    Spectrogram,
    detection_id,
    sql_columns,
    table_fields,
)

GOLDEN = Path(__file__).parents[2] / "fixtures" / "contract" / "detection_v1.json"
#: the same detection with the optional fields added within schema 1: position and spectrogram
GOLDEN_V2 = GOLDEN.with_name("detection_v1_spectrogram.json")
#: and with the complete probability (issue 14), also added within schema 1
GOLDEN_V3 = GOLDEN.with_name("detection_v1_complete.json")
NOW = 1_800_000_000.0


def golden_detection() -> Detection:
    emb = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
    emb /= np.linalg.norm(emb)
    return Detection(
        id="6a0d3e34-3a8f-5f0e-9a0a-0c1d2e3f4a5b",
        device_id="yh-brno-3",
        start_time=1714550000.25,
        end_time=1714550002.6,
        embedding=emb,
        encoder_version="encoder-20261124-93587ad2-cnn-arcface",
        clock_synced=True,
        score=0.97,
        duration_s=2.35,
        snr_db=18.2,
        truncated=False,
        overlap=True,
        refined=True,
        onset_s=12.34,
        offset_s=14.69,
        detector_version="detector-20261124-0dd199cf",
        source="mic:USB Audio Device",
        created_at=1714550003.1,
        extra={"note": "golden"},
    )


def golden_spectrogram() -> Spectrogram:
    """12 frames x 8 mel bands: a rising whistle over a -90 dB floor (deterministic)."""
    db = np.full((12, 8), -90.0, np.float32)
    for t in range(12):
        db[t, 1 + t * 6 // 12] = -30.0 - t
    return Spectrogram.quantise(db, fps=50.0, t0=-0.3, fmin=1500.0, fmax=11000.0, db_step=1.5)


def golden_detection_v2() -> Detection:
    return golden_detection().with_(latitude=49.1951, longitude=16.6068, spectrogram=golden_spectrogram())


def test_golden_payload_is_byte_identical():
    """A change to the wire format shows up here first: the bytes of schema 1 are fixed."""
    payload = golden_detection().to_payload()
    assert payload == GOLDEN.read_bytes().rstrip(b"\n")


def test_golden_payload_decodes_to_the_same_detection():
    d = Detection.from_payload(GOLDEN.read_bytes(), "yh-brno-3", now=NOW)
    g = golden_detection()
    for name in FIELD_NAMES:
        if name == "embedding":
            np.testing.assert_allclose(d.embedding, g.embedding, atol=1e-3)  # float16 on the wire
        else:
            assert getattr(d, name) == getattr(g, name), name


def test_row_codec_round_trip_and_columns_follow_the_field_list():
    g = golden_detection()
    row = g.to_row()
    assert set(row) == set(sql_columns())
    back = Detection.from_row(row)
    assert back.to_row() == row
    assert table_fields() == [f.name for f in FIELDS if f.name not in ("embedding", "spectrogram", "extra")]


def test_a_payload_of_an_older_device_is_valid():
    """Schema 1 before the quality fields and onset/offset were fields: they sat in ``extra``."""
    body = json.loads(golden_detection().to_payload())
    for k in ("overlap", "refined", "onset_s", "offset_s", "clock_synced", "score", "duration_s", "snr_db",
              "truncated", "detector_version", "source", "created_at"):  # fmt: skip
        body.pop(k)
    body["extra"] = {"overlap": True, "refined": False, "onset_s": 1.5, "offset_s": 3.5}
    d = Detection.from_payload(json.dumps(body).encode(), "yh-brno-3", now=NOW)
    assert (d.overlap, d.refined, d.onset_s, d.offset_s, d.extra) == (True, False, 1.5, 3.5, {})
    assert d.duration_s == pytest.approx(d.end_time - d.start_time)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("schema", 2, "unknown schema"),
        ("id", "a/b", "not usable"),
        ("device_id", "other", "does not match the topic"),
        ("start_time", "1714550000", "must be a number"),
        ("end_time", 1714550000.0 + 3600, "not a song length"),
        ("score", 1.5, "outside"),
        ("overlap", 1, "must be true or false"),
        ("overlap", None, "must be true or false"),
        ("onset_s", -1, "outside"),
        ("source", "bad\ud800", "lone surrogate"),
        ("source", "bell\x07", "control characters"),
        ("source", "x" * 600, "longer than"),
        ("encoder_version", "enc 1", "not allowed"),
        ("embedding", {"dtype": "f16", "dim": 8, "b64": "AAAA"}, "bytes, expected"),
        ("extra", [1], "must be an object"),
    ],
)
def test_hostile_fields_are_refused_with_a_reason(key, value, reason):
    body = json.loads(golden_detection().to_payload())
    body[key] = value
    with pytest.raises(ContractError, match=reason):
        Detection.from_payload(body, "yh-brno-3", now=NOW)


def test_every_unicode_class_in_free_text_is_stored_or_refused_never_crashes():
    """Text that survives decoding can always be encoded again (the server's database writes it)."""
    import sys
    import unicodedata

    by_class: dict[str, list[int]] = {}
    for cp in range(sys.maxunicode + 1):  # the first, a middle and the last code point of each class
        by_class.setdefault(unicodedata.category(chr(cp)), []).append(cp)
    samples = [(cat, cps[i]) for cat, cps in by_class.items() for i in (0, len(cps) // 2, -1)]
    assert len(by_class) == 30
    seen = set()
    for cat, cp in samples:
        c = chr(cp)
        body = json.loads(golden_detection().to_payload())
        body["source"] = f"a{c}b"
        try:
            d = Detection.from_payload(body, "yh-brno-3", now=NOW)
        except ContractError:
            assert cat in ("Cs", "Cc"), (hex(cp), cat)
            continue
        d.source.encode("utf-8")  # never a lone surrogate
        seen.add(cat)
    assert seen == set(by_class) - {"Cs", "Cc"}


def test_detection_ids_differ_for_different_sources_at_the_same_times():
    a = detection_id("dev", "a.wav", 1.0, 3.0, 1714550000.0, "enc")
    b = detection_id("dev", "b.wav", 1.0, 3.0, 1714550000.0, "enc")
    assert a != b and a == detection_id("dev", "a.wav", 1.0, 3.0, 1714550000.0, "enc")


def test_golden_payload_with_position_and_spectrogram_is_byte_identical():
    """The optional fields added within schema 1 have their own golden file; the first one stays valid."""
    payload = golden_detection_v2().to_payload()
    assert payload == GOLDEN_V2.read_bytes().rstrip(b"\n")
    d = Detection.from_payload(GOLDEN_V2.read_bytes(), "yh-brno-3", now=NOW)
    assert (d.latitude, d.longitude) == (49.1951, 16.6068)
    assert d.spectrogram == golden_spectrogram()
    # the levels survive within half a quantisation step where they are above the floor
    np.testing.assert_allclose(d.spectrogram.db().max(), -30.0, atol=0.75)
    # without the new fields, the bytes of the first golden payload
    assert golden_detection_v2().with_(
        latitude=None, longitude=None, spectrogram=None
    ).to_payload() == GOLDEN.read_bytes().rstrip(b"\n")
    assert golden_detection_v2().to_payload(with_spectrogram=False).find(b"spectrogram") == -1


def golden_detection_v3() -> Detection:
    return golden_detection_v2().with_(complete=0.0625)


def test_golden_payload_with_the_complete_probability_is_byte_identical():
    """``complete`` is optional: the new golden file has it; the older two stay valid and exact."""
    payload = golden_detection_v3().to_payload()
    assert payload == GOLDEN_V3.read_bytes().rstrip(b"\n")
    assert b'"complete":0.0625' in payload
    d = Detection.from_payload(GOLDEN_V3.read_bytes(), "yh-brno-3", now=NOW)
    assert d.complete == 0.0625
    for older in (GOLDEN, GOLDEN_V2):
        assert Detection.from_payload(older.read_bytes(), "yh-brno-3", now=NOW).complete is None
    assert golden_detection_v3().with_(complete=None).to_payload() == GOLDEN_V2.read_bytes().rstrip(b"\n")
    row = golden_detection_v3().to_row()
    assert row["complete"] == 0.0625 and Detection.from_row(row).complete == 0.0625
    assert Detection.from_row({**row, "complete": None}).complete is None


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5", True, None])
def test_a_bad_complete_probability_is_refused_or_absent(value):
    body = json.loads(golden_detection_v3().to_payload())
    body["complete"] = value
    if value is None:  # null: the field is absent (an older device)
        assert Detection.from_payload(body, "yh-brno-3", now=NOW).complete is None
        return
    with pytest.raises(ContractError, match="complete"):
        Detection.from_payload(body, "yh-brno-3", now=NOW)


def test_row_codec_keeps_the_spectrogram():
    g = golden_detection_v2()
    back = Detection.from_row(g.to_row())
    assert back.spectrogram == g.spectrogram and back.latitude == g.latitude


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fmt": "png"}, "not supported"),
        ({"frames": 0}, "frames must be"),
        ({"frames": 13}, "expected 13 x 8"),
        ({"mels": 9999}, "mels must be"),
        ({"b64": "!!"}, "not valid base64"),
        ({"b64": "AAAA"}, "not zlib"),
        ({"fmax": 100.0}, "fmax must be above"),
        ({"db_step": 0}, "outside"),
        ({"fps": "50"}, "must be a number"),
    ],
)
def test_hostile_spectrograms_are_refused(change, reason):
    body = json.loads(golden_detection_v2().to_payload())
    body["spectrogram"].update(change)
    with pytest.raises(ContractError, match=reason):
        Detection.from_payload(body, "yh-brno-3", now=NOW)


def test_a_deflate_bomb_is_refused_without_inflating_it():
    import base64
    import zlib

    body = json.loads(golden_detection_v2().to_payload())
    body["spectrogram"]["b64"] = base64.b64encode(zlib.compress(bytes(50_000_000))).decode()
    with pytest.raises(ContractError, match="expected 12 x 8"):
        Detection.from_payload(body, "yh-brno-3", now=NOW)


@pytest.mark.parametrize(("key", "value"), [("latitude", 91.0), ("longitude", -180.5), ("latitude", "49")])
def test_positions_out_of_range_are_refused(key, value):
    body = json.loads(golden_detection_v2().to_payload())
    body[key] = value
    with pytest.raises(ContractError, match=key):
        Detection.from_payload(body, "yh-brno-3", now=NOW)
