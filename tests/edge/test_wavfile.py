import csv
import subprocess
import sys

import numpy as np
import pytest

from edge.adapters.audio.replay import ReplaySource
from edge.adapters.audio.wavfile import read_info, read_wav, to_mono, write_wav
from edge.core.errors import AudioFormatError


def _broken(fixtures_dir):
    with open(fixtures_dir / "audio" / "broken" / "expected_errors.csv") as fh:
        return [(fixtures_dir / "audio" / "broken" / r["file"], r["problem"]) for r in csv.DictReader(fh)]


def test_every_good_format_reads_as_the_same_signal(fixtures_dir):
    files = sorted((fixtures_dir / "audio" / "good").glob("*.wav"))
    assert len(files) >= 9
    for f in files:
        x, rate = read_wav(f)
        mono = to_mono(x)
        assert mono.dtype == np.float32 and np.all(np.isfinite(mono))
        assert len(mono) == int(rate * 0.5)
        # every file holds the same 5 kHz tone + sweep (channel 0 at 0.6 peak)
        assert 0.55 < np.abs(x[:, 0]).max() <= 0.61, f


def test_good_formats_resample_to_the_model_rate(fixtures_dir):
    chunks = list(ReplaySource([fixtures_dir / "audio" / "good"], 24000, chunk_seconds=0.1).chunks())
    per_file = {}
    for c in chunks:
        assert c.sample_rate == 24000 and c.samples.dtype == np.float32
        per_file[c.source] = per_file.get(c.source, 0) + len(c.samples)
    assert len(per_file) == 9
    assert all(n == 12000 for n in per_file.values()), per_file


@pytest.mark.parametrize("idx", range(23))
def test_every_broken_fixture_is_refused_with_a_named_problem(fixtures_dir, idx):
    cases = _broken(fixtures_dir)
    assert len(cases) == 23
    path, problem = cases[idx]
    with pytest.raises(AudioFormatError) as err:
        read_wav(path)
    msg = str(err.value)
    assert str(path) in msg and problem.lower() in msg.lower()
    assert "\n" not in msg


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(AudioFormatError, match="no such file"):
        read_info(tmp_path / "nope.wav")
    with pytest.raises(AudioFormatError, match="directory"):
        read_info(tmp_path)


def test_write_then_read_roundtrip(tmp_path):
    x = (0.5 * np.sin(np.arange(1000) / 5)).astype(np.float32)
    for bits in (16, 24, 32):
        write_wav(tmp_path / f"r{bits}.wav", x, 22050, bits=bits)
        y, rate = read_wav(tmp_path / f"r{bits}.wav")
        assert rate == 22050 and np.max(np.abs(y[:, 0] - x)) < 2.0 ** -(bits - 2)
    assert not list(tmp_path.glob("*.part"))


def test_replay_skips_broken_files_and_reports_them(fixtures_dir):
    errors = []
    src = ReplaySource(
        [fixtures_dir / "audio" / "broken", fixtures_dir / "audio" / "good" / "pcm16_mono_24k.wav"],
        24000,
        on_error=lambda p, e: errors.append(p),
    )
    chunks = list(src.chunks())
    assert len(errors) == 23
    assert {c.source for c in chunks} == {str(fixtures_dir / "audio" / "good" / "pcm16_mono_24k.wav")}
    assert src.stats()["files_failed"] == 23


def test_cli_reports_broken_files_in_one_line_without_traceback(fixtures_dir):
    broken = fixtures_dir / "audio" / "broken"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "features", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 23
    for path, problem in _broken(fixtures_dir):
        assert any(str(path) in ln and problem.lower() in ln.lower() for ln in lines), path


def test_cli_single_missing_file_is_a_clean_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "features", str(tmp_path / "x.wav")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "no such file" in proc.stderr
