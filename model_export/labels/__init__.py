"""Hand-made ground truth of the real recordings in ``../shared/realaudio`` (times only, never audio).

- ``real_songs.csv``: one row per yellowhammer song (onset, offset, dialect, terminal elements);
- ``real_files.csv``: one row per manifest file (is there a yellowhammer, how many songs, recordist,
  frozen train/test split by recording).

How they were made and the conventions: ``README.md`` beside this file.

Usage::

    from model_export.labels import real_files, real_songs
    songs = real_songs()                 # list[RealSong]; paths resolved against the realaudio root
    test = [f for f in real_files() if f.split == "test"]
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DIALECTS",
    "YELLOWHAMMER_VALUES",
    "LabelError",
    "RealFile",
    "RealSong",
    "default_root",
    "real_files",
    "real_songs",
]

HERE = Path(__file__).resolve().parent
SONGS_CSV = HERE / "real_songs.csv"
FILES_CSV = HERE / "real_files.csv"

DIALECTS = ("XlB", "XsB", "BC", "BE", "BD", "BhBl", "BlBh", "BBe", "incomplete", "unsure")
"""Values of ``RealSong.dialect``: Hansen's dialects, ``incomplete`` (no terminal phrase) and ``unsure``."""

YELLOWHAMMER_VALUES = ("yes", "background", "calls", "possible", "no")
"""Values of ``RealFile.yellowhammer``: ``yes`` a focal singing yellowhammer; ``background`` yellowhammer
songs or calls audible behind another species; ``calls`` a focal yellowhammer that only calls;
``possible`` BirdNET >= 0.1 somewhere or a yellowhammer listed by the recordist, but none recognisable by
eye; ``no`` none. Only ``no`` files are clean negatives."""

SONG_FIELDS = (
    "file", "onset_s", "offset_s", "dialect", "complete", "song_type", "quality", "overlap",
    "x_start_s", "x_end_s", "x_khz", "b_start_s", "b_end_s", "b_khz", "note",
)  # fmt: skip
FILE_FIELDS = ("file", "label", "yellowhammer", "n_songs", "recordist", "split")


class LabelError(ValueError):
    """A label CSV is malformed or names a recording that is not there."""


def default_root() -> Path:
    """The realaudio folder: ``$YH_REALAUDIO`` or ``../shared/realaudio`` beside the repository."""
    env = os.environ.get("YH_REALAUDIO")
    return Path(env) if env else HERE.parents[2] / "shared" / "realaudio"


@dataclass(frozen=True, slots=True)
class RealSong:
    """One hand-labelled song. Times in seconds from the start of the file, frequencies in kHz.

    ``x_*``/``b_*`` are ``None`` where the song has no such element (or it is not visible).
    ``path`` is the recording's absolute path (it may not exist when the audio is absent).
    """

    file: str
    onset_s: float
    offset_s: float
    dialect: str
    complete: bool
    song_type: str
    quality: str
    overlap: bool
    x_start_s: float | None
    x_end_s: float | None
    x_khz: float | None
    b_start_s: float | None
    b_end_s: float | None
    b_khz: float | None
    note: str
    path: Path

    @property
    def duration_s(self) -> float:
        return self.offset_s - self.onset_s

    @property
    def cut(self) -> bool:
        """The song runs over the start or end of the file (``cut_start``/``cut_end`` in the note)."""
        return "cut_start" in self.note or "cut_end" in self.note


@dataclass(frozen=True, slots=True)
class RealFile:
    """One manifest recording: whether and how a yellowhammer is in it, and its frozen split."""

    file: str
    label: str
    yellowhammer: str
    n_songs: int
    recordist: str
    split: str
    path: Path

    @property
    def clean_negative(self) -> bool:
        """Usable as yellowhammer-free audio (no focal, background or possible yellowhammer)."""
        return self.yellowhammer == "no"


def _read(csv_path: Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != fields:
            raise LabelError(f"{csv_path.name}: columns {reader.fieldnames} != {list(fields)}")
        return list(reader)


def _opt(v: str, where: str) -> float | None:
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        raise LabelError(f"{where}: {v!r} is not a number") from None


def _resolve(root: Path | None, rel: str, check: bool) -> Path:
    base = Path(root) if root is not None else default_root()
    p = base / rel
    if check and not p.exists():
        raise LabelError(f"{rel}: recording not found under {base} (set root= or $YH_REALAUDIO)")
    return p


def real_songs(root: str | Path | None = None, check_audio: bool | None = None) -> list[RealSong]:
    """All hand-labelled songs, in file and time order.

    Parameters
    ----------
    root : folder holding the recordings (default :func:`default_root`).
    check_audio : raise :class:`LabelError` when a labelled recording is missing. Default: True when
        ``root`` is given, False otherwise (so the labels can be read without the audio).
    """
    check = (root is not None) if check_audio is None else check_audio
    out = []
    for i, r in enumerate(_read(SONGS_CSV, SONG_FIELDS), start=2):
        where = f"{SONGS_CSV.name}:{i}"
        onset, offset = _opt(r["onset_s"], where), _opt(r["offset_s"], where)
        if onset is None or offset is None:
            raise LabelError(f"{where}: onset_s and offset_s are required")
        out.append(
            RealSong(
                file=r["file"],
                onset_s=onset,
                offset_s=offset,
                dialect=r["dialect"],
                complete=r["complete"] == "1",
                song_type=r["song_type"],
                quality=r["quality"],
                overlap=r["overlap"] == "1",
                x_start_s=_opt(r["x_start_s"], where),
                x_end_s=_opt(r["x_end_s"], where),
                x_khz=_opt(r["x_khz"], where),
                b_start_s=_opt(r["b_start_s"], where),
                b_end_s=_opt(r["b_end_s"], where),
                b_khz=_opt(r["b_khz"], where),
                note=r["note"],
                path=_resolve(root, r["file"], check),
            )
        )
    return sorted(out, key=lambda s: (s.file, s.onset_s))


def real_files(root: str | Path | None = None, check_audio: bool | None = None) -> list[RealFile]:
    """One row per manifest recording with its frozen ``split`` ("train"/"test").

    ``check_audio`` as in :func:`real_songs`.
    """
    check = (root is not None) if check_audio is None else check_audio
    out = []
    for i, r in enumerate(_read(FILES_CSV, FILE_FIELDS), start=2):
        try:
            n = int(r["n_songs"])
        except ValueError:
            raise LabelError(f"{FILES_CSV.name}:{i}: n_songs {r['n_songs']!r} is not an integer") from None
        out.append(
            RealFile(
                file=r["file"],
                label=r["label"],
                yellowhammer=r["yellowhammer"],
                n_songs=n,
                recordist=r["recordist"],
                split=r["split"],
                path=_resolve(root, r["file"], check),
            )
        )
    return out
