"""``yh-edge features`` and ``yh-edge analyze``: the frontend and the whole recorder on files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge.app.cli import main
from edge.app.cli_options import config_option
from edge.app.config import load_config
from edge.app.output import CSV_COLUMNS, WINDOW_COLUMNS, detection_rows, write_output
from edge.core.errors import YellowhammerError


@main.command("features")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def features(paths: tuple[Path, ...], as_json: bool) -> None:
    """Run the log-mel frontend on WAV files and summarise it (a check of audio input)."""
    import numpy as np

    from edge.adapters.audio.replay import ReplaySource
    from edge.core.frontend import FrontendConfig, StreamingLogMel, mel_frequencies

    cfg = FrontendConfig()
    failed = []
    src = ReplaySource(paths, cfg.sample_rate, on_error=lambda p, e: failed.append(str(e)))
    fe = StreamingLogMel(cfg)
    current, frames, seconds = None, [], 0.0

    def report():
        if current is None:
            return
        m = np.concatenate(frames) if frames else np.zeros((0, cfg.n_mels), np.float32)
        peak = float(mel_frequencies(cfg)[int(m.mean(axis=0).argmax())]) if len(m) else 0.0
        row = {
            "file": current,
            "seconds": round(seconds, 3),
            "frames": int(m.shape[0]),
            "mean_db": round(float(m.mean()), 2) if len(m) else None,
            "peak_band_hz": round(peak),
        }
        click.echo(
            json.dumps(row)
            if as_json
            else f"{current}: {row['seconds']} s, {row['frames']} frames, mean {row['mean_db']} dB, "
            f"loudest band {row['peak_band_hz']} Hz"
        )

    for chunk in src.chunks():
        if chunk.stream_start:
            report()
            fe.reset()
            current, frames, seconds = chunk.source, [], 0.0
        frames.append(fe.process(chunk.samples))
        seconds += chunk.duration
    report()
    for msg in failed:
        click.echo(f"error: {msg}", err=True)
    if failed:
        sys.exit(1)


# -- analyze ---------------------------------------------------------------------------
OUTPUT_FORMATS = ("csv", "json", "raven")


@main.command("analyze")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(OUTPUT_FORMATS),
    default="csv",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (default: stdout); for --format raven a folder gets one table per audio file.",
)
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help="Store in this database."
)
@click.option(
    "--no-store", is_flag=True, help="Only print the detections; do not write them to the database."
)
@click.option(
    "--threshold", type=float, default=None, help="Detector threshold (default: config, else manifest)."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
@click.option(
    "--windows",
    is_flag=True,
    help="Print every detector window (file, start_s, end_s, probability, gated) as CSV or JSON "
    "instead of the songs (the songs are still stored unless --no-store).",
)
def analyze(
    paths: tuple[Path, ...],
    config_path: Path | None,
    fmt: str,
    output: Path | None,
    db_path: Path | None,
    no_store: bool,
    threshold: float | None,
    progress: bool | None,
    windows: bool,
) -> None:
    """Find yellowhammer songs in WAV files or folders of them (FLAC, MP3 and Ogg too where the
    optional ``soundfile`` package is installed).

    Every song goes into the detection store (like the daemon's, so they are synced too) and is
    printed as CSV, JSON or a Raven selection table. Unreadable files are reported one per line
    and skipped; the exit status is then 1.
    """
    from edge.adapters.audio.replay import ReplaySource, expand_paths
    from edge.app.compose import build_pipeline

    cfg = _analyze_config(config_path, threshold, db_path)
    if windows and fmt == "raven":
        raise click.UsageError("--windows prints CSV or JSON, not a Raven table")
    if output is not None and fmt != "raven" and output.is_dir():
        raise click.UsageError(f"{output} is a folder; only --format raven writes one file per input")
    files = expand_paths(paths)
    if not files:
        raise click.UsageError("no WAV files (nor FLAC, MP3 or Ogg) found in the given paths")
    failed: list[str] = []
    durations = _durations(files, failed)
    comp = build_pipeline(cfg, memory=no_store)
    before = None if no_store else _store_figures(comp.store)
    pipeline = comp.pipeline
    good = [Path(f) for f in durations]
    src = ReplaySource(
        good,
        pipeline.frontend_cfg.sample_rate,
        on_error=lambda p, e: failed.append(str(e)),
        rate_multiples=True,
    )
    src.fmax_hz = pipeline.frontend_cfg.fmax
    window_rows: list[dict] = []
    current = {"file": ""}
    if windows:
        pipeline.on_windows = _window_recorder(window_rows, current, pipeline)
    show = sys.stderr.isatty() if progress is None else progress
    total = sum(durations.values())
    try:
        detections = _run(pipeline, src, current, total, show)
    finally:
        if not no_store:
            comp.writer.retry()
    rows = detection_rows(detections)
    _write(rows, window_rows if windows else None, fmt, output, durations, failed, total)
    if not no_store:
        _report_storing(comp, before, len(rows))
    if failed:
        sys.exit(1)


def _analyze_config(config_path: Path | None, threshold: float | None, db_path: Path | None):
    """The config with the command's overrides (threshold, database)."""
    import dataclasses

    cfg = load_config(config_path)
    if threshold is not None:
        cfg = dataclasses.replace(cfg, models=dataclasses.replace(cfg.models, threshold=threshold))
    if db_path is not None:
        cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, path=str(db_path)))
    return cfg


def _durations(files, failed: list[str]) -> dict[str, float]:
    """Each readable file's duration, s; the unreadable ones' messages go to ``failed``."""
    from edge.adapters.audio.sfreader import audio_info

    durations: dict[str, float] = {}
    for f in files:
        try:
            durations[str(f)] = audio_info(f).duration
        except YellowhammerError as exc:
            failed.append(str(exc))
    return durations


def _run(pipeline, src, current: dict, total: float, show: bool) -> list:
    """Every chunk of ``src`` through the pipeline (``current["file"]``: the file being read),
    with a progress bar in audio seconds; the detections."""
    detections = []
    with click.progressbar(
        length=max(1, int(round(total))), label="analysing", file=sys.stderr, hidden=not show
    ) as bar:
        done = 0.0
        for chunk in src.chunks():
            current["file"] = chunk.source
            detections += pipeline.process(chunk)
            done += chunk.duration
            if int(done) > bar.pos:
                bar.update(int(done) - bar.pos)
        detections += pipeline.end_stream()
    return detections


def _write(rows: list[dict], window_rows: list[dict] | None, fmt: str, output: Path | None,
           durations: dict[str, float], failed: list[str], total: float) -> None:  # fmt: skip
    """Write the songs (or, with ``--windows``, the window rows) and the summary lines."""
    out_rows, columns = (window_rows, WINDOW_COLUMNS) if window_rows is not None else (rows, CSV_COLUMNS)
    for p in write_output(out_rows, fmt, output, durations, columns):
        click.echo(f"wrote {p}", err=True)
    n_files = len(durations) - len([m for m in failed if any(m.startswith(f) for f in durations)])
    click.echo(f"{len(rows)} songs in {n_files} files ({total / 60:.1f} min of audio)", err=True)
    for msg in failed:
        click.echo(f"error: {msg}", err=True)


def _window_recorder(rows: list[dict], current: dict, pipeline):
    """``Pipeline.on_windows`` callback: one row per detector window of the current file."""
    fe = pipeline.frontend_cfg
    frame_s = fe.hop_length / fe.sample_rate
    length_s = ((pipeline.detector.window_frames - 1) * fe.hop_length + fe.n_fft) / fe.sample_rate

    def record(batch: list[tuple[int, float, bool]]) -> None:
        for start, prob, gated in batch:
            t0 = start * frame_s
            rows.append({"file": current["file"], "start_s": round(t0, 3), "end_s": round(t0 + length_s, 3),
                         "probability": round(float(prob), 5), "gated": bool(gated)})  # fmt: skip

    return record


def _store_figures(store) -> tuple[int, int]:
    counts = store.counts()
    return counts["detections"], int(counts["counters"].get("id_collisions", 0))


def _report_storing(comp, before: tuple[int, int], n_songs: int) -> None:
    """How many songs are new in the store and how many were there already; an id collision or
    a song that could not be stored ends the command with a non-zero exit."""
    pending = comp.writer.pending
    after = _store_figures(comp.store)
    comp.store.close()
    new, collisions = after[0] - before[0], after[1] - before[1]
    click.echo(f"stored {new} new detections in {comp.store.path}"
               f" ({n_songs - new - collisions - pending} were stored before)", err=True)  # fmt: skip
    if pending:
        raise click.ClickException(
            f"{pending} of {n_songs} detections could not be stored ({comp.writer.last_error}); "
            "they are in the output above"
        )
    if collisions:
        raise click.ClickException(
            f"{collisions} songs were not stored: their detection id belongs to another stored song "
            "(see the log above; counted as id_collisions in `yh-edge db check`)"
        )
