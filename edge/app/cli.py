"""``yh-edge``: the command line of the recorder.

Logging is configured here and only here (stderr, so journald keeps it). Expected errors
(:class:`~edge.core.errors.YellowhammerError`) become one-line ``click.ClickException`` messages.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from edge import __version__
from edge.app import runtime  # noqa: F401  (first: single-threaded BLAS before numpy loads)
from edge.app.cli_options import config_option
from edge.app.config import load_config, to_toml
from edge.app.sync import sync_command
from edge.core.errors import YellowhammerError
from edge.kit.cli import Group, setup_logging

log = logging.getLogger(__name__)


@click.group(cls=Group, expected=(YellowhammerError,), context_settings={"help_option_names": ["-h", "--help"]})
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
def config_validate(file: Path) -> None:
    """Check FILE (with environment overrides) and report the first problem."""
    load_config(file)
    click.echo(f"{file}: OK")


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    cfg = load_config(config_path)
    click.echo(json.dumps(cfg.to_dict(), indent=2) if as_json else to_toml(cfg))


@main.command("features")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def features(paths: tuple[Path, ...], as_json: bool) -> None:
    """Run the log-mel frontend on WAV files and summarise it (a check of audio input)."""
    import numpy as np

    from edge.adapters.audio.sources import ReplaySource
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
                "onset_s": d.onset_s,
                "offset_s": d.offset_s,
                "duration_s": d.duration_s,
                "start_utc": _utc(d.start_time),
                "end_utc": _utc(d.end_time),
                "score": d.score,
                "snr_db": d.snr_db,
                "truncated": d.truncated,
                "overlap": d.overlap,
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

    from edge.core.errors import YellowhammerError

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

    from edge.adapters.audio.sources import ReplaySource, expand_paths
    from edge.adapters.audio.wavfile import read_info
    from edge.app.compose import build_pipeline

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
    comp = build_pipeline(cfg, memory=no_store)
    pipeline = comp.pipeline
    good = [Path(f) for f in durations]
    src = ReplaySource(
        good,
        pipeline.frontend_cfg.sample_rate,
        on_error=lambda p, e: failed.append(str(e)),
        rate_multiples=True,
    )
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


# -- run -------------------------------------------------------------------------------
@main.command("run")
@config_option
@click.option("--once", is_flag=True, help="Exit when a replay source has been played through.")
@click.option(
    "--replay",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Replay these WAV files/folders instead of the configured source (repeatable).",
)
def run(config_path: Path | None, once: bool, replay: tuple[Path, ...]) -> None:
    """The recorder daemon: listen, detect, embed and store until SIGTERM/SIGINT.

    Uses the microphone or WAV replay of the config; syncs over MQTT when mqtt.enabled. Under
    systemd (Type=notify) it reports readiness and pings the watchdog.
    """
    import dataclasses

    from edge.app.daemon import Daemon

    cfg = load_config(config_path)
    if replay:
        audio = dataclasses.replace(cfg.audio, source="replay", replay_path=":".join(str(p) for p in replay))
        cfg = dataclasses.replace(cfg, audio=audio)
    sys.exit(Daemon(cfg, once=once).run())


# -- status ------------------------------------------------------------------------------
def _model_versions(cfg) -> dict:
    from edge.adapters.models.manifest import load_manifest
    from edge.adapters.models.tflite import MODELS_DIR

    out = {}
    for kind, path in (("detector", cfg.models.detector), ("encoder", cfg.models.encoder)):
        try:
            out[kind] = load_manifest(path or MODELS_DIR / f"{kind}.tflite", verify_hash=False).version
        except YellowhammerError as exc:
            out[kind] = f"error: {exc}"
    return out


def collect_status(cfg) -> dict:
    """What ``status`` reports: store counts, backlog, disk, daemon health and uptime."""
    import time

    from edge.adapters.store.sqlite import SqliteStore
    from edge.app.health import disk_usage, read_health

    status: dict = {"device_id": cfg.device_id, "database": str(cfg.db_path), "models": _model_versions(cfg)}
    try:
        store = SqliteStore(cfg.db_path, readonly=True)
        try:
            counts = store.counts()
        finally:
            store.close()
        status["store"] = counts
        status["detections"] = counts["detections"]
        status["unsynced"] = counts["unsynced"]
        status["last_detection"] = counts["last_detection"]
        status["last_detection_utc"] = _utc(counts["last_detection"]) if counts["last_detection"] else None
        oldest = counts["oldest_unsynced"]
        status["oldest_unsynced_age_s"] = round(time.time() - oldest, 1) if oldest else None
    except YellowhammerError as exc:
        status["store_error"] = str(exc)
    status["disk"] = disk_usage(cfg.device.data_dir)
    health = read_health(cfg.device.data_dir)
    status["daemon"] = health
    status["running"] = bool(health and health.get("running"))
    status["uptime_s"] = health.get("uptime_s") if status["running"] else None
    return status


@main.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Counts, last detection, unsynced backlog, disk and uptime of this recorder."""
    from edge.app.health import format_bytes, format_duration

    cfg = load_config(config_path)
    st = collect_status(cfg)
    if as_json:
        click.echo(json.dumps(st, indent=1, default=str))
        return
    h = st.get("daemon") or {}
    if st["running"]:
        state = f"running for {format_duration(st['uptime_s'])} ({h.get('state')})"
    elif h:
        state = f"not running (last seen {format_duration(h.get('age_s'))} ago, {h.get('state')})"
    else:
        state = "not running (never started with this data directory)"
    click.echo(f"recorder    {st['device_id']}: {state}")
    if "store_error" in st:
        click.echo(f"database    {st['store_error']}")
    else:
        last = st["last_detection_utc"] or "none yet"
        click.echo(f"detections  {st['detections']} stored, last song {last}")
        backlog = st["unsynced"]
        age = st["oldest_unsynced_age_s"]
        click.echo(
            f"unsynced    {backlog}"
            + (f" (oldest waiting {format_duration(age)})" if backlog and age else "")
        )
    d = st["disk"]
    if "free_bytes" in d:
        click.echo(f"disk        {format_bytes(d['free_bytes'])} free of {format_bytes(d['total_bytes'])}")
    click.echo(f"models      detector {st['models']['detector']}, encoder {st['models']['encoder']}")
    if st["running"]:
        p = h.get("pipeline", {})
        lag = h.get("processing_lag_s")
        click.echo(
            f"this run    {p.get('audio_seconds', 0) / 3600:.2f} h of audio, {p.get('songs', 0)} songs, "
            f"{h.get('audio_overflows', 0)} overflows" + (f", lag {lag:.1f} s" if lag is not None else "")
        )
        temp = h.get("cpu_temp_c")
        click.echo(
            f"system      RSS {format_bytes(h.get('rss_bytes'))}"
            + (f", CPU {temp:.0f} C" if temp is not None else "")
        )
        held = (h.get("store") or {}).get("pending_in_memory")
        if held:
            click.echo(f"WARNING     {held} detections held in memory: the database cannot be written")


# -- doctor ------------------------------------------------------------------------------
def run_checks(cfg, config_path: Path | None) -> list[dict]:
    """Every doctor check: name, status (ok/warn/fail), detail and likely cause."""
    checks: list[dict] = []

    def add(name, state, detail, cause=""):
        checks.append({"check": name, "status": state, "detail": detail, "cause": cause})

    add("config", "ok", str(config_path) if config_path else "defaults (no config file)")
    # models
    try:
        from edge.app.compose import load_models

        det, enc = load_models(cfg)
        add(
            "models",
            "ok",
            f"detector {det.version} (window {det.window_frames}/{det.hop_frames} frames, threshold "
            f"{det.threshold:.2f}), encoder {enc.version} ({enc.embedding_dim}-d)",
        )
    except YellowhammerError as exc:
        add(
            "models",
            "fail",
            str(exc),
            "model files missing, corrupt, or exported for another frontend: reinstall the package or "
            "copy a matching .tflite/.json pair",
        )
    # database
    from edge.adapters.store.sqlite import SqliteStore

    try:
        store = SqliteStore(cfg.db_path)
        try:
            result = store.integrity_check()
            counts = store.counts()
        finally:
            store.close()
        if result == "ok":
            add(
                "database",
                "ok",
                f"{cfg.db_path}: {counts['detections']} detections, {counts['unsynced']} unsynced",
            )
        else:
            add(
                "database",
                "fail",
                f"{cfg.db_path}: integrity check says {result}",
                "file damaged (power cut on a bad SD card?): copy it away, then `yh-edge db check`",
            )
    except YellowhammerError as exc:
        add(
            "database",
            "fail",
            str(exc),
            "data directory not writable by this user, read-only or full file system, or a damaged card",
        )
    # disk
    from edge.app.health import disk_usage, format_bytes

    d = disk_usage(cfg.device.data_dir)
    min_free = cfg.store.min_free_mb * 1024 * 1024
    if "free_bytes" not in d:
        add("disk", "fail", d.get("error", "unknown"), "data directory missing")
    elif d["free_bytes"] < min_free:
        add(
            "disk",
            "fail",
            f"{format_bytes(d['free_bytes'])} free, below store.min_free_mb",
            "card full: sync the backlog, lower store.retention_days, turn off clip saving",
        )
    elif d["free_bytes"] < 2 * min_free:
        add("disk", "warn", f"{format_bytes(d['free_bytes'])} free", "getting full")
    else:
        add("disk", "ok", f"{format_bytes(d['free_bytes'])} free of {format_bytes(d['total_bytes'])}")
    # clock
    from edge.adapters.system.clock import clock_synchronized

    if clock_synchronized():
        add("clock", "ok", "synchronised")
    else:
        add(
            "clock",
            "warn",
            "not synchronised: detections are stored with clock_synced = false",
            "no network time yet (enable systemd-timesyncd or chrony) and no RTC module",
        )
    # audio
    if cfg.audio.source == "mic":
        from edge.adapters.audio.sources import list_input_devices

        try:
            devices = list_input_devices()
        except YellowhammerError as exc:
            add("microphone", "fail", str(exc), "install the 'mic' extra and portaudio19-dev")
        except OSError as exc:
            add("microphone", "fail", f"PortAudio failed: {exc}", "no sound subsystem access (audio group?)")
        else:
            want = cfg.audio.device
            names = ", ".join(f"{x['index']}: {x['name']}" for x in devices)
            if not devices:
                add(
                    "microphone",
                    "fail",
                    "no input device",
                    "USB microphone unplugged or not recognised (check `arecord -l`), or this user is not in "
                    "the audio group",
                )
            elif want and not any(
                (want.isdigit() and int(want) == x["index"]) or want.lower() in str(x["name"]).lower()
                for x in devices
            ):
                add(
                    "microphone",
                    "fail",
                    f"no input device matches {want!r}; inputs: {names}",
                    "audio.device typo",
                )
            else:
                add("microphone", "ok", names)
    else:
        missing = [p for p in cfg.audio.replay_path.split(":") if p and not Path(p).exists()]
        if not cfg.audio.replay_path or missing:
            add(
                "audio",
                "fail",
                f"replay source without files ({missing[0] if missing else 'audio.replay_path empty'})",
                "audio.replay_path typo",
            )
        else:
            add("audio", "ok", f"replay {cfg.audio.replay_path}")
    # broker
    if cfg.mqtt.enabled:
        import socket

        try:
            with socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=3.0):
                pass
            add("broker", "ok", f"{cfg.mqtt.host}:{cfg.mqtt.port} reachable")
        except OSError as exc:
            add(
                "broker",
                "fail",
                f"{cfg.mqtt.host}:{cfg.mqtt.port}: {exc.strerror or exc}",
                "no network, wrong mqtt.host/port, or a firewall; detections wait in the outbox meanwhile",
            )
        if cfg.mqtt.password_file:
            try:
                from edge.kit.mqtt import MqttSetupError, read_password

                read_password(cfg.mqtt.password_file)
                add("credentials", "ok", "MQTT password file readable")
            except (MqttSetupError, OSError) as exc:
                add(
                    "credentials",
                    "fail",
                    str(exc),
                    "password file missing or unreadable (systemd LoadCredential= path?)",
                )
    else:
        add("broker", "ok", "sync disabled (mqtt.enabled = false)")
    from edge.app.health import read_health

    h = read_health(cfg.device.data_dir)
    if h and h.get("running"):
        held = (h.get("store") or {}).get("pending_in_memory")
        if held:
            add(
                "daemon",
                "fail",
                f"running, but {held} detections are held in memory",
                "database not writable",
            )
        else:
            add("daemon", "ok", f"running (pid {h.get('pid')}, {h.get('state')})")
    else:
        add("daemon", "warn", "not running", "start it: systemctl start yellowhammer-edge")
    return checks


@main.command("doctor")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def doctor(config_path: Path | None, as_json: bool) -> None:
    """Check microphone, models, database, disk, clock and broker; exit 1 on any failure."""
    cfg = load_config(config_path)
    checks = run_checks(cfg, config_path)
    if as_json:
        click.echo(json.dumps(checks, indent=1))
    else:
        for c in checks:
            click.echo(f"{c['status'].upper():4}  {c['check']}: {c['detail']}")
            if c["status"] != "ok" and c["cause"]:
                click.echo(f"      likely cause: {c['cause']}")
    if any(c["status"] == "fail" for c in checks):
        sys.exit(1)


# -- db ----------------------------------------------------------------------------------
@main.group("db")
def db_group() -> None:
    """Database maintenance: check, vacuum, export, prune."""


def _open_store(config_path: Path | None, db: Path | None, readonly: bool = False):
    from edge.adapters.store.sqlite import SqliteStore

    cfg = load_config(config_path)
    return cfg, SqliteStore(db or cfg.db_path, readonly=readonly)


db_option = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="Database file.")


@db_group.command("check")
@config_option
@db_option
def db_check(config_path: Path | None, db: Path | None) -> None:
    """Run SQLite's integrity check and print the counts; exit 1 unless ok."""
    _, store = _open_store(config_path, db, readonly=True)
    try:
        result = store.integrity_check()
        counts = store.counts()
    finally:
        store.close()
    click.echo(f"integrity: {result}")
    click.echo(
        f"detections: {counts['detections']}, unsynced: {counts['unsynced']}, "
        f"counters: {json.dumps(counts['counters'])}"
    )
    if result != "ok":
        sys.exit(1)


@db_group.command("vacuum")
@config_option
@db_option
def db_vacuum(config_path: Path | None, db: Path | None) -> None:
    """Give the space of deleted rows back to the file system (stop the daemon first)."""
    from edge.app.health import format_bytes

    _, store = _open_store(config_path, db)
    try:
        before, after = store.vacuum()
    finally:
        store.close()
    click.echo(f"{format_bytes(before)} -> {format_bytes(after)}")


@db_group.command("prune")
@config_option
@db_option
@click.option("--older-than", "days", type=float, default=None, help="Days (default: store.retention_days).")
def db_prune(config_path: Path | None, db: Path | None, days: float | None) -> None:
    """Delete synced detections older than the retention age (unsynced ones are never touched)."""
    cfg, store = _open_store(config_path, db)
    try:
        n = store.prune_synced((cfg.store.retention_days if days is None else days) * 86400.0)
        store.checkpoint()
    finally:
        store.close()
    click.echo(f"pruned {n} synced detections")


@db_group.command("export")
@config_option
@db_option
@click.option("--format", "fmt", type=click.Choice(("csv", "json")), default="csv", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@click.option("--embeddings/--no-embeddings", default=True, show_default=True, help="Include the embeddings.")
@click.option("--unsynced", is_flag=True, help="Only detections not yet acknowledged by the broker.")
def db_export(
    config_path: Path | None, db: Path | None, fmt: str, output: Path | None, embeddings: bool, unsynced: bool
) -> None:
    """Export the stored detections (e.g. to carry them home on a USB stick)."""
    import csv
    import io

    _, store = _open_store(config_path, db, readonly=True)
    try:
        rows = store.rows()
    finally:
        store.close()
    if unsynced:
        rows = [r for r in rows if r["synced_at"] is None]
    for r in rows:
        if not embeddings:
            r.pop("embedding")
        r.pop("extra", None)
    buf = io.StringIO()
    if fmt == "json":
        buf.write(json.dumps(rows) + "\n")
    else:
        cols = list(rows[0]) if rows else ["id"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            if "embedding" in r:
                r["embedding"] = " ".join(f"{v:.6g}" for v in r["embedding"])
            w.writerow(r)
    if output is None:
        click.echo(buf.getvalue(), nl=False)
    else:
        _atomic_write(output, buf.getvalue())
        click.echo(f"wrote {len(rows)} detections to {output}", err=True)


@config_group.command("default")
def config_default() -> None:
    """Print the bundled, commented default config (a starting point for /etc/yellowhammer)."""
    click.echo((Path(__file__).resolve().parents[1] / "data" / "edge.toml").read_text(encoding="utf-8"), nl=False)


main.add_command(sync_command)


if __name__ == "__main__":  # pragma: no cover
    main()
