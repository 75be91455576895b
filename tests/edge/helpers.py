"""Helpers for the edge daemon tests: WAV streams with known songs, configs, tiny file systems."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import read_wav, to_mono, write_wav

HERE = Path(__file__).parent
SYNTH = HERE.parent / "fixtures" / "synth"
BROKEN = HERE.parent / "fixtures" / "audio" / "broken"
SR = 24000


@dataclass(frozen=True)
class KnownSong:
    file: str
    onset_s: float
    offset_s: float


def synth_labels() -> list[dict]:
    with open(SYNTH / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def song_clip(name: str) -> tuple[np.ndarray, float, float]:
    """A clean fixture song file: audio and its labelled onset/offset."""
    audio, sr = read_wav(SYNTH / name)
    assert sr == SR
    row = next(r for r in synth_labels() if r["file"] == name)
    return to_mono(audio), float(row["onset_s"]), float(row["offset_s"])


def make_song_stream(
    path: Path,
    names: list[str],
    gap_s: float = 3.0,
    noise_db: float = -70.0,
    seed: int = 7,
    lead_s: float = 1.0,
) -> list[KnownSong]:
    """Write a WAV of fixture songs separated by ``gap_s`` of faint noise; returns the truth."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(lead_s * SR), np.float32)]
    truth = []
    t = lead_s
    for name in names:
        audio, on, off = song_clip(name)
        truth.append(KnownSong(str(path), round(t + on, 4), round(t + off, 4)))
        parts.append(audio)
        parts.append(np.zeros(int(gap_s * SR), np.float32))
        t += audio.size / SR + gap_s
    x = np.concatenate(parts)
    x += (10 ** (noise_db / 20) * rng.standard_normal(x.size)).astype(np.float32)
    write_wav(path, x, SR)
    return truth


ALL_SONGS = [f"song_{d}.wav" for d in ("XlB", "XsB", "BC", "BE", "BD", "BhBl", "BlBh", "BBe", "incomplete")]


def write_config(path: Path, data_dir: Path, extra: str = "", replay: str = "") -> Path:
    text = f"""
[device]
id = "test-device"
data_dir = "{data_dir}"

[audio]
source = "{"replay" if replay else "mic"}"
replay_path = "{replay}"

[health]
log_interval_s = 0.5

[web]
port = 0
"""
    path.write_text(text + extra)
    return path


def yh_edge_cmd() -> list[str]:
    return [sys.executable, "-m", "edge"]


def _mount_tmpfs(path: Path, size: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _umount(path: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def remount(path: Path, mode: str) -> None:
    import subprocess

    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True, timeout=10)


def fill_disk(path: Path, leave_bytes: int) -> Path:
    """Fill the file system at ``path`` up to ``leave_bytes`` of free space; returns the filler."""
    import shutil

    filler = path / "filler.bin"
    free = shutil.disk_usage(path).free
    with open(filler, "wb") as fh:
        left = max(0, free - leave_bytes)
        while left > 0:
            n = min(left, 1 << 16)
            try:
                fh.write(b"\0" * n)
                fh.flush()
            except OSError:
                break
            left -= n
    return filler


def big_det(i: int):
    """A detection of ~2 kB in the database (a padded ``extra``), times 10 s apart."""
    from tests.factories import make_detection

    start = 1_700_000_000.0 + 10 * i
    return make_detection("dev", i, dim=32).with_(id=f"id-{i:06d}", start_time=start, end_time=start + 2.0,
                                                  created_at=start, extra={"pad": "x" * 2000})  # fmt: skip
