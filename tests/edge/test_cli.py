"""``yh-edge`` commands, including bad input: broken WAVs, bad models, config typos, bad places."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from click.testing import CliRunner

from edge.adapters.models.tflite import MODELS_DIR
from edge.adapters.store.sqlite import SqliteStore
from edge.app.cli import main
from tests.edge.helpers import BROKEN, SYNTH, make_song_stream, remount, write_config


def invoke(*args, env=None):
    runner = CliRunner()
    return runner.invoke(main, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture(scope="module")
def two_songs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    truth = make_song_stream(d / "a.wav", ["song_XlB.wav", "song_BC.wav"], gap_s=2.0)
    return d / "a.wav", truth


def test_analyze_csv_to_stdout_and_store(tmp_path, two_songs):
    wav, truth = two_songs
    db = tmp_path / "d.sqlite"
    r = invoke("analyze", str(wav), "--db", str(db))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == len(truth)
    for row, t in zip(rows, truth, strict=True):
        assert abs(float(row["onset_s"]) - t.onset_s) < 0.03
        assert abs(float(row["offset_s"]) - t.offset_s) < 0.03
        assert row["truncated"] == "false"
    s = SqliteStore(db, readonly=True)
    assert sorted(d.id for d in s.detections()) == sorted(r["id"] for r in rows)
    # again: same ids, nothing duplicated
    assert invoke("analyze", str(wav), "--db", str(db)).exit_code == 0
    assert s.counts()["detections"] == len(truth)


def test_analyze_json_and_raven(tmp_path, two_songs):
    wav, truth = two_songs
    out = tmp_path / "out.json"
    r = invoke("analyze", str(wav), "--no-store", "--format", "json", "-o", str(out))
    assert r.exit_code == 0
    rows = json.loads(out.read_text())
    assert len(rows) == len(truth) and {"onset_s", "score", "id", "encoder_version"} <= set(rows[0])
    folder = tmp_path / "raven"
    folder.mkdir()
    r = invoke(
        "analyze", str(wav), str(SYNTH / "song_BD.wav"), "--no-store", "--format", "raven", "-o", str(folder)
    )
    assert r.exit_code == 0
    tables = sorted(folder.iterdir())
    assert [t.name for t in tables] == [
        "a.yellowhammer.selections.txt",
        "song_BD.yellowhammer.selections.txt",
    ]
    lines = tables[0].read_text().splitlines()
    assert lines[0].startswith("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)")
    assert len(lines) == 1 + len(truth)
    single = tmp_path / "all.txt"
    invoke(
        "analyze", str(wav), str(SYNTH / "song_BD.wav"), "--no-store", "--format", "raven", "-o", str(single)
    )
    rows = [line.split("\t") for line in single.read_text().splitlines()[1:]]
    assert len(rows) == len(truth) + 1
    assert float(rows[-1][3]) > float(rows[-1][8])  # Begin Time counts across files


def test_every_broken_fixture_gives_a_one_line_error_and_the_rest_is_analysed(tmp_path, two_songs):
    wav, truth = two_songs
    with open(BROKEN / "expected_errors.csv", newline="") as fh:
        expected = list(csv.DictReader(fh))
    db = tmp_path / "d.sqlite"
    r = invoke("analyze", str(BROKEN), str(wav), "--db", str(db))
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    for row in expected:
        line = next((e for e in errors if row["file"] in e), None)
        assert line is not None, f"no error line for {row['file']}"
        assert row["problem"].lower() in line.lower(), line
    assert "Traceback" not in r.output
    assert len(list(csv.DictReader(io.StringIO(r.stdout)))) == len(truth)
    assert SqliteStore(db, readonly=True).counts()["detections"] == len(truth)


def test_missing_file_and_no_wavs(tmp_path):
    r = CliRunner().invoke(main, ["analyze", str(tmp_path / "nope.wav"), "--no-store"])
    assert r.exit_code == 1 and "no such file" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["analyze", str(empty), "--no-store"])
    assert r.exit_code == 2 and "no WAV files" in r.stderr


def test_config_typo_is_one_line(tmp_path, two_songs):
    wav, _ = two_songs
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[segmenter]\nmin_songs = 1.0\n")
    r = CliRunner().invoke(main, ["analyze", str(wav), "-c", str(cfg)])
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "unknown config key 'segmenter.min_songs'" in r.stderr
    r = CliRunner().invoke(main, ["config", "validate", str(cfg)])
    assert r.exit_code == 1 and "segmenter.min_songs" in r.stderr


def test_bad_model_manifest_is_one_line_and_keeps_the_store(tmp_path, two_songs):
    wav, _ = two_songs
    db = tmp_path / "d.sqlite"
    assert invoke("analyze", str(wav), "--db", str(db)).exit_code == 0
    n = SqliteStore(db, readonly=True).counts()["detections"]
    models = tmp_path / "models"
    models.mkdir()
    for name in ("detector.tflite", "detector.json"):
        shutil.copy(MODELS_DIR / name, models / name)
    m = json.loads((models / "detector.json").read_text())
    m["frontend"]["hop_length"] = 160
    (models / "detector.json").write_text(json.dumps(m))
    env = {"YH_MODELS__DETECTOR": str(models / "detector.tflite")}
    r = CliRunner().invoke(main, ["analyze", str(wav), "--db", str(db)], env=env)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert "hop_length" in r.stderr
    assert SqliteStore(db, readonly=True).counts()["detections"] == n


def count(db) -> int:
    s = SqliteStore(db, readonly=True)
    try:
        return s.counts()["detections"]
    finally:
        s.close()


def test_read_only_data_dir_is_one_line_and_keeps_the_store(tiny_fs, two_songs):
    wav, _ = two_songs
    db = tiny_fs / "d.sqlite"
    assert invoke("analyze", str(wav), "--db", str(db)).exit_code == 0
    n = count(db)
    assert n > 0
    remount(tiny_fs, "ro")
    try:
        r = CliRunner().invoke(main, ["analyze", str(wav), "--db", str(db)])
        assert r.exit_code == 1 and r.stderr.count("\n") == 1
        assert "cannot open the detection database" in r.stderr
    finally:
        remount(tiny_fs, "rw")
    assert count(db) == n


def test_full_data_dir_is_one_line_and_nothing_is_lost(tiny_fs, two_songs):
    from tests.edge.helpers import fill_disk

    wav, truth = two_songs
    db = tiny_fs / "d.sqlite"
    assert invoke("analyze", str(SYNTH / "song_BD.wav"), "--db", str(db)).exit_code == 0
    n = count(db)
    filler = fill_disk(tiny_fs, leave_bytes=0)
    r = CliRunner().invoke(main, ["analyze", str(wav), "--db", str(db)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    # fails at open (no room for the WAL index) or keeps the songs for the output, either way
    # one line saying why
    (err,) = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert "disk is full" in err or "disk full" in err
    filler.unlink()
    s = SqliteStore(db, readonly=True)
    assert s.counts()["detections"] == n and s.integrity_check() == "ok"
    s.close()


def test_config_show_and_default(tmp_path):
    cfg = write_config(tmp_path / "edge.toml", tmp_path / "data")
    r = invoke("config", "show", "-c", str(cfg), "--json")
    assert json.loads(r.stdout)["device"]["id"] == "test-device"


def test_status_doctor_and_db_commands(tmp_path, two_songs):
    wav, truth = two_songs
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(wav))
    assert invoke("analyze", str(wav), "-c", str(cfg)).exit_code == 0
    st = json.loads(invoke("status", "-c", str(cfg), "--json").stdout)
    assert st["detections"] == len(truth) and st["unsynced"] == len(truth) and st["running"] is False
    assert st["models"]["detector"] and "free_bytes" in st["disk"]
    text = invoke("status", "-c", str(cfg)).stdout
    assert "not running" in text and f"{len(truth)} stored" in text
    r = CliRunner().invoke(main, ["doctor", "-c", str(cfg), "--json"])
    checks = {c["check"]: c for c in json.loads(r.stdout)}
    assert checks["models"]["status"] == checks["database"]["status"] == checks["audio"]["status"] == "ok"
    assert r.exit_code == 0  # warnings (clock, daemon not running) do not fail
    r = CliRunner().invoke(main, ["db", "check", "-c", str(cfg)])
    assert r.exit_code == 0 and "integrity: ok" in r.stdout
    out = tmp_path / "export.csv"
    assert invoke("db", "export", "-c", str(cfg), "-o", str(out), "--no-embeddings").exit_code == 0
    assert len(list(csv.DictReader(open(out)))) == len(truth)  # noqa: SIM115
    assert "pruned 0" in invoke("db", "prune", "-c", str(cfg), "--older-than", "0").stdout  # none synced
    assert invoke("db", "vacuum", "-c", str(cfg)).exit_code == 0


def test_doctor_fails_with_a_likely_cause(tmp_path):
    cfg = write_config(
        tmp_path / "edge.toml",
        tmp_path / "data",
        replay=str(tmp_path / "missing"),
        extra='\n[models]\ndetector = "/nonexistent/detector.tflite"\n[mqtt]\nenabled = true\nport = 1\n',
    )
    r = CliRunner().invoke(main, ["doctor", "-c", str(cfg)])
    assert r.exit_code == 1
    for name in ("models", "audio", "broker"):
        assert f"FAIL  {name}:" in r.stdout
    assert r.stdout.count("likely cause:") >= 3


def test_db_export_json_and_csv_carry_the_spectrogram_in_its_wire_form(tmp_path, two_songs):
    from edge.contract.spectrogram import Spectrogram

    wav, truth = two_songs
    db = tmp_path / "d.sqlite"
    assert invoke("analyze", str(wav), "--db", str(db)).exit_code == 0
    stored = {d.id: d for d in SqliteStore(db, readonly=True).detections()}
    assert all(d.spectrogram is not None for d in stored.values())
    r = invoke("db", "export", "--db", str(db), "--format", "json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert len(rows) == len(truth)
    for row in rows:
        assert Spectrogram.from_wire(row["spectrogram"]) == stored[row["id"]].spectrogram
    r = invoke("db", "export", "--db", str(db), "--format", "csv", "--no-embeddings")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == len(truth)
    for row in rows:
        assert "Spectrogram(" not in row["spectrogram"]
        assert Spectrogram.from_wire(json.loads(row["spectrogram"])) == stored[row["id"]].spectrogram
