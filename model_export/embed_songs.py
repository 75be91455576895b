"""``yh-model embed``: embed songs whose times a researcher marked by hand, as the recorder would.

SONGS.csv has the columns ``file,onset_s,offset_s`` (more columns are kept in the sidecar table);
``file`` is absolute or relative to the CSV's folder (or ``--root``). Every song goes through
exactly the runtime's path:

- the audio is delivered as the replay source delivers it (:func:`edge.adapters.audio.replay.
  delivery_rate`: an integer multiple of the model rate is analysed as it is, any other rate is
  resampled with the runtime's :func:`edge.core.resample.resample`); WAV through the runtime's
  reader, other formats (mp3, flac, ogg) through ``soundfile``;
- the log-mel frames of the whole file from :class:`edge.core.frontend.StreamingLogMel`, held in the
  pipeline's :class:`edge.core.pipeline.FrameRing`;
- the window the pipeline embeds for a song ending at ``offset_s``: ``window.frames`` frames
  closing ``window.margin_frames`` after the song's last frame (the segmenter's frame convention),
  into the int8 encoder through :class:`edge.adapters.models.tflite.TFLiteEncoder`.

Outputs ``EMB.npy`` (float32 ``(n_songs, dim)``, unit rows, in CSV order) and ``EMB.csv`` (the
input rows plus ``encoder_version`` and, when the encoder has a complete head, ``complete_p``).
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from edge.adapters.audio.replay import delivery_rate
from edge.adapters.audio.wavfile import read_wav, to_mono
from edge.adapters.models.tflite import TFLiteEncoder
from edge.core.errors import AudioFormatError, ModelError
from edge.core.frontend import FrontendConfig, StreamingLogMel
from edge.core.pipeline import FrameRing
from edge.core.resample import resample


@dataclass(frozen=True, slots=True)
class SongRef:
    """One song to embed: its audio file and its times (s from the file's start)."""

    path: Path
    onset_s: float
    offset_s: float


def read_songs_csv(csv_path: Path, root: Path | None = None) -> tuple[list[SongRef], list[dict]]:
    """Songs of a ``file,onset_s,offset_s`` CSV; raises ``ValueError`` with a one-line reason."""
    base = root if root is not None else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{csv_path}: no songs")
    missing = {"file", "onset_s", "offset_s"} - set(rows[0])
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
    songs = []
    for i, r in enumerate(rows, start=2):
        try:
            on, off = float(r["onset_s"]), float(r["offset_s"])
        except (TypeError, ValueError):
            raise ValueError(f"{csv_path} line {i}: onset_s/offset_s must be numbers") from None
        if not 0 <= on < off:
            raise ValueError(f"{csv_path} line {i}: need 0 <= onset_s < offset_s (got {on}, {off})")
        p = Path(r["file"])
        songs.append(SongRef(p if p.is_absolute() else base / p, on, off))
    return songs, rows


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate; WAV through the runtime's reader, other formats via soundfile."""
    if not path.is_file():
        raise AudioFormatError(f"{path}: no such file")
    if path.suffix.lower() == ".wav":
        x, sr = read_wav(path)
        return to_mono(x), int(sr)
    try:
        import soundfile as sf
    except ImportError:  # a training extra, not on the Pi
        raise AudioFormatError(f"{path}: only WAV can be read without the soundfile package") from None
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioFormatError(f"{path}: unreadable audio ({exc})") from None
    return to_mono(x), int(sr)


def stream_frames(x: np.ndarray, sr: int, cfg: FrontendConfig) -> np.ndarray:
    """The runtime's log-mel frames of a whole recording (delivered as the replay source does)."""
    rate = delivery_rate(sr, cfg.sample_rate, rate_multiples=True)
    if rate != sr:
        x = resample(x, sr, rate)
    return StreamingLogMel(cfg, input_rate=rate).process(np.asarray(x, np.float32))


def song_end_frame(offset_s: float, cfg: FrontendConfig) -> int:
    """Exclusive end frame of a song ending at ``offset_s``, inverse of the segmenter's offset
    (``end_sample = (e - 1) * hop + n_fft/2 + hop/2`` at the model rate)."""
    hop, half = cfg.hop_length, cfg.n_fft // 2
    return int(round((offset_s * cfg.sample_rate - half - hop // 2) / hop)) + 1


def encoder_margin(encoder: TFLiteEncoder) -> int:
    """``window.margin_frames`` of the encoder's manifest, as the pipeline composes it."""
    window = encoder.model.manifest.raw.get("window", {})
    if "margin_frames" in window:
        return int(window["margin_frames"])
    from edge.core.pipeline import ENCODER_MARGIN_S

    return encoder.frontend.frames_for(ENCODER_MARGIN_S)


def embed_songs(songs: list[SongRef], encoder: TFLiteEncoder, progress=None) -> np.ndarray:
    """``(n, dim)`` float32 unit embeddings of the songs, in order (files read once each)."""
    cfg, w = encoder.frontend, encoder.window_frames
    margin = encoder_margin(encoder)
    out = np.zeros((len(songs), encoder.embedding_dim), np.float32)
    by_file: dict[Path, list[int]] = defaultdict(list)
    for i, s in enumerate(songs):
        by_file[s.path].append(i)
    for path, idx in by_file.items():
        x, sr = read_audio(path)
        duration = x.shape[0] / sr
        frames = stream_frames(x, sr, cfg)
        ring = FrameRing(max(frames.shape[0], 2 * w), cfg.n_mels)
        ring.append(frames)
        for i in idx:
            if songs[i].offset_s > duration + 0.05:
                raise AudioFormatError(
                    f"{path}: song ends at {songs[i].offset_s} s, after the file ({duration:.2f} s)"
                )
            end = song_end_frame(songs[i].offset_s, cfg) + margin
            out[i] = encoder.embed(ring.get(end - w, end))
        if progress:
            progress(len(idx))
    return out


@click.command("embed")
@click.argument("songs_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="EMB.npy to write."
)
@click.option(
    "--encoder",
    "encoder_path",
    default=None,
    type=click.Path(path_type=Path),
    help="encoder.tflite (manifest beside it); default: the shipped one.",
)
@click.option(
    "--root",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the CSV's relative file paths start from (default: the CSV's folder).",
)
def embed_cmd(songs_csv: Path, out: Path, encoder_path: Path | None, root: Path | None) -> None:
    """Embed hand-marked songs (SONGS_CSV: file,onset_s,offset_s) exactly as the recorder would.

    Writes OUT (float32, one unit row per song, in CSV order) and OUT with .csv (the rows plus
    encoder_version and complete_p).
    """
    try:
        songs, rows = read_songs_csv(songs_csv, root)
        encoder = TFLiteEncoder(encoder_path, FrontendConfig())
        if sys.stderr.isatty():
            with click.progressbar(length=len(songs), label="embedding", file=sys.stderr) as bar:
                z = embed_songs(songs, encoder, bar.update)
        else:
            z = embed_songs(songs, encoder)
    except (ValueError, AudioFormatError, ModelError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as fh:
        np.save(fh, z)
    side = out.with_suffix(".csv")
    cols = list(rows[0]) + ["encoder_version"]
    head = getattr(encoder, "complete_probability", None)
    probs = [head(e) for e in z] if head is not None else [None] * len(z)
    if any(p is not None for p in probs):
        cols.append("complete_p")
    with open(side, "w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=cols)
        wr.writeheader()
        for r, p in zip(rows, probs, strict=True):
            row = {**r, "encoder_version": encoder.version}
            if "complete_p" in cols:
                row["complete_p"] = "" if p is None else f"{p:.4f}"
            wr.writerow(row)
    tmp.replace(out)
    click.echo(f"{len(songs)} songs -> {out} ({z.shape[1]}-d, {encoder.version}); table {side}")
