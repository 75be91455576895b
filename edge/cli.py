"""``yh-edge``: the command line of the recorder.

Logging is configured here and only here (stderr, so journald keeps it). Expected errors
(:class:`~edge.errors.YellowhammerError`) become one-line ``click.ClickException`` messages.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .config import load_config, to_toml
from .errors import YellowhammerError

log = logging.getLogger(__name__)


def setup_logging(verbose: int, quiet: bool = False) -> None:
    """Configure the root logger once, for the CLI process."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def friendly_errors(fn):
    """Turn expected domain errors into one-line CLI errors (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except YellowhammerError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="YH_CONFIG",
    default=None,
    help="Config file (TOML); also $YH_CONFIG. Defaults apply when omitted.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yh-edge")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Yellowhammer dialect monitor: the recorder (Raspberry Pi) side."""
    setup_logging(verbose, quiet)


@main.group("config")
def config_group() -> None:
    """Check and show the configuration."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@friendly_errors
def config_validate(file: Path) -> None:
    """Check FILE (with environment overrides) and report the first problem."""
    load_config(file)
    click.echo(f"{file}: OK")


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@friendly_errors
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    cfg = load_config(config_path)
    click.echo(json.dumps(cfg.to_dict(), indent=2) if as_json else to_toml(cfg))


@main.command("features")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@friendly_errors
def features(paths: tuple[Path, ...], as_json: bool) -> None:
    """Run the log-mel frontend on WAV files and summarise it (a check of audio input)."""
    import numpy as np

    from .frontend import FrontendConfig, StreamingLogMel, mel_frequencies
    from .sources import ReplaySource

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
CSV_COLUMNS = (
    "file",
    "onset_s",
    "offset_s",
    "duration_s",
    "start_utc",
    "end_utc",
    "score",
    "snr_db",
    "truncated",
    "overlap",
    "clock_synced",
    "id",
    "detector_version",
    "encoder_version",
)
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Begin Path",
    "File Offset (s)",
    "Score",
    "SNR (dB)",
    "Truncated",
    "Id",
)
RAVEN_BAND_HZ = (2500.0, 9000.0)


def _utc(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def detection_rows(detections) -> list[dict]:
    """Flat rows (the CSV/JSON columns) of detections made by ``analyze``."""
    rows = []
    for d in detections:
        rows.append(
            {
                "file": d.source,
                "onset_s": d.extra.get("onset_s"),
                "offset_s": d.extra.get("offset_s"),
                "duration_s": d.duration_s,
                "start_utc": _utc(d.start_time),
                "end_utc": _utc(d.end_time),
                "score": d.score,
                "snr_db": d.snr_db,
                "truncated": d.truncated,
                "overlap": bool(d.extra.get("overlap", False)),
                "clock_synced": d.clock_synced,
                "id": d.id,
                "detector_version": d.detector_version,
                "encoder_version": d.encoder_version,
            }
        )
    return rows


def write_csv(rows: list[dict], fh) -> None:
    import csv

    w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()})


def write_raven(rows: list[dict], fh, file_offsets: dict[str, float] | None = None) -> None:
    """A Raven selection table; Begin Time counts across the files in order (Raven's file
    sequence), ``File Offset (s)`` within each file."""
    offsets = file_offsets or {}
    fh.write("\t".join(RAVEN_COLUMNS) + "\n")
    for i, r in enumerate(rows, 1):
        base = offsets.get(r["file"], 0.0)
        fh.write(
            "\t".join(
                str(v)
                for v in (
                    i,
                    "Spectrogram 1",
                    1,
                    f"{base + r['onset_s']:.3f}",
                    f"{base + r['offset_s']:.3f}",
                    f"{RAVEN_BAND_HZ[0]:.1f}",
                    f"{RAVEN_BAND_HZ[1]:.1f}",
                    r["file"],
                    f"{r['onset_s']:.3f}",
                    f"{r['score']:.4f}",
                    f"{r['snr_db']:.1f}",
                    "yes" if r["truncated"] else "no",
                    r["id"],
                )
            )
            + "\n"
        )


def _write_output(rows: list[dict], fmt: str, output: Path | None, durations: dict[str, float]) -> list[Path]:
    """Write rows to stdout, a file, or (Raven, given a folder) one table per input file."""
    import io

    written = []
    if fmt == "raven" and output is not None and output.is_dir():
        for f in durations:
            part = [r for r in rows if r["file"] == f]
            target = output / (Path(f).stem + ".yellowhammer.selections.txt")
            buf = io.StringIO()
            write_raven(part, buf)
            _atomic_write(target, buf.getvalue())
            written.append(target)
        return written
    buf = io.StringIO()
    if fmt == "csv":
        write_csv(rows, buf)
    elif fmt == "json":
        buf.write(json.dumps(rows, indent=1) + "\n")
    else:
        offsets, t = {}, 0.0
        for f, dur in durations.items():
            offsets[f] = t
            t += dur
        write_raven(rows, buf, offsets)
    if output is None:
        click.echo(buf.getvalue(), nl=False)
    else:
        _atomic_write(output, buf.getvalue())
        written.append(output)
    return written


def _atomic_write(path: Path, text: str) -> None:
    import os

    from .errors import YellowhammerError

    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise YellowhammerError(f"{path}: cannot write output ({exc.strerror or exc})") from None


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
@friendly_errors
def analyze(
    paths: tuple[Path, ...],
    config_path: Path | None,
    fmt: str,
    output: Path | None,
    db_path: Path | None,
    no_store: bool,
    threshold: float | None,
    progress: bool | None,
) -> None:
    """Find yellowhammer songs in WAV files or folders of them.

    Every song goes into the detection store (like the daemon's, so they are synced too) and is
    printed as CSV, JSON or a Raven selection table. Unreadable files are reported one per line
    and skipped; the exit status is then 1.
    """
    import dataclasses

    from .pipeline import build_pipeline
    from .sources import ReplaySource, expand_paths
    from .wavfile import read_info

    cfg = load_config(config_path)
    if threshold is not None:
        cfg = dataclasses.replace(cfg, models=dataclasses.replace(cfg.models, threshold=threshold))
    if db_path is not None:
        cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, path=str(db_path)))
    if output is not None and fmt != "raven" and output.is_dir():
        raise click.UsageError(f"{output} is a folder; only --format raven writes one file per input")
    files = expand_paths(paths)
    if not files:
        raise click.UsageError("no WAV files found in the given paths")
    durations: dict[str, float] = {}
    failed: list[str] = []
    for f in files:
        try:
            durations[str(f)] = read_info(f).duration
        except YellowhammerError as exc:
            failed.append(str(exc))
    store = _MemorySink() if no_store else None
    comp = build_pipeline(cfg, store=store)
    pipeline = comp.pipeline
    if no_store:
        pipeline.sink = store
    good = [Path(f) for f in durations]
    src = ReplaySource(good, pipeline.frontend_cfg.sample_rate, on_error=lambda p, e: failed.append(str(e)))
    detections = []
    show = sys.stderr.isatty() if progress is None else progress
    total = sum(durations.values())
    try:
        with click.progressbar(
            length=max(1, int(round(total))), label="analysing", file=sys.stderr, hidden=not show
        ) as bar:
            done = 0.0
            for chunk in src.chunks():
                detections += pipeline.process(chunk)
                done += chunk.duration
                if int(done) > bar.pos:
                    bar.update(int(done) - bar.pos)
            detections += pipeline.end_stream()
    finally:
        if not no_store:
            comp.writer.retry()
    rows = detection_rows(detections)
    for p in _write_output(rows, fmt, output, durations):
        click.echo(f"wrote {p}", err=True)
    n_files = len(durations) - len([m for m in failed if any(m.startswith(f) for f in durations)])
    click.echo(f"{len(rows)} songs in {n_files} files ({total / 60:.1f} min of audio)", err=True)
    for msg in failed:
        click.echo(f"error: {msg}", err=True)
    if not no_store:
        pending = comp.writer.pending
        comp.store.close()
        if pending:
            raise click.ClickException(
                f"{pending} of {len(rows)} detections could not be stored ({comp.writer.last_error}); "
                "they are in the output above"
            )
    if failed:
        sys.exit(1)


class _MemorySink:
    """Stand-in store for ``analyze --no-store``."""

    def add(self, detection, clip_path=None) -> bool:
        return True

    def close(self) -> None:
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
