"""Hardening of analyze/status/config against odd input: wild file-name clocks, odd stored
times, non-finite config numbers, stale health files, dropped audio, unnormalised float WAVs."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import time
from datetime import datetime

import pytest
from click.testing import CliRunner

from edge.app.cli import main
from tests.edge.helpers import make_song_stream, write_config


def invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture(scope="module")
def song_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    truth = make_song_stream(d / "a.wav", ["song_XlB.wav", "song_BC.wav"], gap_s=2.0)
    return d / "a.wav", truth


@pytest.mark.parametrize("stamp", ["99991231_235959", "19700101_000000", "00010101_000000"])
def test_a_file_name_time_out_of_range_is_not_taken(tmp_path, song_wav, stamp, caplog):
    wav = tmp_path / f"{stamp}.wav"
    wav.write_bytes(song_wav[0].read_bytes())
    mtime = time.time() - 3600
    os.utime(wav, (mtime, mtime))
    db = tmp_path / "d.sqlite"
    with caplog.at_level(logging.WARNING):
        r = invoke("analyze", str(wav), "--db", str(db))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == len(song_wav[1])
    for row in rows:  # the file's mtime minus its length, not year 9999 / 1970
        t = datetime.fromisoformat(row["start_utc"].replace("Z", "+00:00")).timestamp()
        assert mtime - 60 < t < mtime + 1
        assert row["clock_synced"] == "false"
    assert any(stamp in m and "modification time" in m for m in caplog.messages)


def test_status_shows_an_unformattable_stored_time_raw(tmp_path, song_wav):
    wav, truth = song_wav
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(wav))
    assert invoke("analyze", str(wav), "-c", str(cfg)).exit_code == 0
    con = sqlite3.connect(data / "detections.sqlite")
    with con:  # a row stored by an older version from a 99991231_235959.wav
        con.execute("UPDATE detections SET start_time = 253402300825.0, end_time = 253402300827.5")
    con.close()
    r = invoke("status", "-c", str(cfg))
    assert r.exit_code == 3, r.output  # not running, nothing else wrong
    assert f"{len(truth)} stored, last song 253402300827.5" in r.stdout


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("store", "min_free_mb", "nan"),
        ("store", "retention_days", "inf"),
        ("health", "log_interval_s", "nan"),
        ("health", "stall_seconds", "nan"),
        ("health", "maintenance_interval_s", "+inf"),
        ("mqtt", "stats_interval_s", "nan"),
        ("mqtt", "digest_window_s", "nan"),
        ("models", "support_threshold", "-inf"),
        ("clips", "daily_mb", "inf"),
    ],
)
def test_config_refuses_non_finite_numbers_naming_the_key(tmp_path, section, key, value):
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f"[{section}]\n{key} = {value}\n")
    r = CliRunner().invoke(main, ["config", "validate", str(cfg)])
    assert r.exit_code != 0
    assert f"{section}.{key}" in r.output and "finite" in r.output
    assert len(r.output.strip().splitlines()) == 1
    # the same through an environment override
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    env = {f"YH_{section.upper()}__{key.upper()}": value}
    r = CliRunner().invoke(main, ["config", "validate", str(empty)], env=env)
    assert r.exit_code != 0 and f"{section}.{key}" in r.output and "finite" in r.output


def _health(data, age_s: float, **extra) -> None:
    from edge.app.health import write_health

    now = time.time()
    data.mkdir(parents=True, exist_ok=True)
    write_health(data, {"pid": os.getpid(), "device_id": "test-device", "state": "running", "started": now - 30 * 86400,
                        "updated": now - age_s, "uptime_s": 30 * 86400 - age_s, "problems": [],
                        "source": {"kind": "mic", "state": "capturing"}, "pipeline": {"audio_seconds": 3600},
                        **extra})  # fmt: skip


def test_a_stale_health_file_with_a_live_pid_is_not_running(tmp_path):
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data)  # health.log_interval_s = 0.5
    _health(data, age_s=7 * 86400)  # our pid is alive: the pid of a recorder gone a week ago, reused
    r = invoke("status", "-c", str(cfg))
    assert r.exit_code == 3, r.output
    assert "not running (last seen 7d" in r.stdout and "running for" not in r.stdout
    st = json.loads(invoke("status", "-c", str(cfg), "--json").stdout)
    assert st["running"] is False and st["daemon"]["stale"] is True and st["uptime_s"] is None
    # the daemon's own interval (in the file) decides: written every 0.5 s, 2 min old is stale
    _health(data, age_s=120, health_interval_s=0.5, stall_seconds=5.0)
    assert invoke("status", "-c", str(cfg)).exit_code == 3
    # a fresh file with a live pid is running
    _health(data, age_s=1, health_interval_s=0.5, stall_seconds=5.0)
    r = invoke("status", "-c", str(cfg))
    assert r.exit_code == 0, r.output
    assert "running for 29d" in r.stdout


def test_audio_dropped_behind_a_slow_consumer_is_a_problem_in_status(tmp_path):
    import threading

    import numpy as np

    from edge.adapters.audio.mic import MicSource
    from edge.adapters.audio.wavfile import write_wav
    from edge.app.health import write_health
    from edge.app.snapshot import problems
    from tests.edge.fake_pyaudio import FakePyAudioModule

    wav = tmp_path / "mic48k.wav"
    rng = np.random.default_rng(1)
    write_wav(wav, 0.01 * rng.standard_normal(48000 * 20).astype(np.float32), 48000)
    mod = FakePyAudioModule(str(wav), speed=50.0)
    src = MicSource(None, 48000, backend=mod, queue_seconds=2.0)  # a small queue fills quickly
    stop = threading.Event()
    deadline = time.monotonic() + 30
    for _ in src.chunks(stop):
        time.sleep(0.05)  # the consumer (the detector) is slower than the input
        if src.stats()["dropped_chunks"] >= 5 or mod.finished or time.monotonic() > deadline:
            break
    stop.set()
    st = src.stats()
    assert st["dropped_chunks"] >= 5 and st["dropped_seconds"] == pytest.approx(st["dropped_chunks"] * 0.5)
    now = time.time()
    snap = {"pid": os.getpid(), "state": "running", "started": now - 60, "updated": now, "uptime_s": 60,
            "source": {**st, "kind": "mic"}, "audio_overflows": st["overflows"], "store": {}, "input_level": None,
            "pipeline": {"audio_seconds": st["seconds"], "songs": 0}}  # fmt: skip
    snap["problems"] = problems(snap)
    assert any(f"({st['dropped_chunks']} blocks dropped)" in p and "lost" in p for p in snap["problems"])
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data)
    data.mkdir()
    write_health(data, snap)
    r = invoke("status", "-c", str(cfg))
    assert r.exit_code == 1, r.output
    assert f"{st['dropped_chunks']} blocks dropped" in r.stdout
    assert any(line.startswith("PROBLEM") and "blocks dropped" in line for line in r.stdout.splitlines())


def _float_wav(path, x, rate: int) -> None:
    """A 32-bit IEEE float mono WAV holding ``x`` as it is (no clipping, no scaling)."""
    import struct

    import numpy as np

    data = np.asarray(x, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
                     + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)  # fmt: skip


def test_unnormalised_float_wav_is_named_not_silently_analysed_to_nothing(tmp_path, song_wav, caplog):
    from edge.adapters.audio.wavfile import read_wav

    x, rate = read_wav(song_wav[0])
    ok, int16, absurd = tmp_path / "ok.wav", tmp_path / "int16scale.wav", tmp_path / "absurd.wav"
    _float_wav(ok, x[:, 0], rate)
    _float_wav(int16, x[:, 0] * 32768.0, rate)
    _float_wav(absurd, x[:, 0] * 1e29, rate)
    with caplog.at_level(logging.WARNING):
        r = invoke("analyze", str(ok), "--db", str(tmp_path / "ok.sqlite"))
    assert r.exit_code == 0 and len(list(csv.DictReader(io.StringIO(r.stdout)))) == len(song_wav[1])
    assert not [m for m in caplog.messages if "normalised" in m]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        invoke("analyze", str(int16), "--db", str(tmp_path / "i.sqlite"))
    warned = [m for m in caplog.messages if "normalised" in m]
    assert len(warned) == 1 and str(int16) in warned[0] and "integer scale" in warned[0]
    r = invoke("analyze", str(absurd), "--db", str(tmp_path / "a.sqlite"))
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(absurd) in errors[0] and "not audio at any scale" in errors[0]


def _strict_json(text: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "odd",
    ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400, "-5", '"abc"', "[1]", '{"a": 1}', "true"],
)
def test_status_survives_any_odd_value_in_the_health_file(tmp_path, odd):
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data)
    data.mkdir()
    now = time.time()
    fields = ("uptime_s", "processing_lag_s", "cpu_temp_c", "rss_bytes", "audio_overflows", "pipeline", "source",
              "input_level", "store", "problems")  # fmt: skip
    odd_fields = ", ".join(f'"{k}": {odd}' for k in fields)
    (data / "health.json").write_text(
        f'{{"pid": {os.getpid()}, "state": "running", "updated": {now}, "started": {now - 60}, {odd_fields}}}'
    )
    r = invoke("status", "-c", str(cfg))
    assert r.exit_code in (0, 1), r.output
    assert "recorder    test-device: running for unknown (running)" in r.stdout, r.stdout
    st = _strict_json(invoke("status", "-c", str(cfg), "--json").stdout)  # no NaN/Infinity for scripts
    assert st["running"] is True and st["uptime_s"] is None
    assert all(isinstance(p, str) for p in st["problems"])
    # a stopped recorder's odd last-seen age too
    (data / "health.json").write_text(f'{{"pid": 0, "state": {odd}, "updated": {odd}, "problems": {odd}}}')
    r = invoke("status", "-c", str(cfg))
    assert r.exit_code == 3 and "recorder    test-device: not running (last seen unknown ago" in r.stdout, (
        r.stdout
    )
    r = invoke("doctor", "-c", str(cfg))
    assert "Traceback" not in r.output and "daemon" in r.stdout


@pytest.mark.parametrize("odd", [float("nan"), float("inf"), float("-inf"), -5, -0.5, "abc", None, [1], True])
def test_format_duration_and_bytes_say_unknown_for_odd_values(odd):
    from edge.kit.units import format_bytes, format_duration

    assert format_duration(odd) == "unknown"
    assert format_bytes(odd) == "unknown"
