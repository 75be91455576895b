"""The recorder daemon: lifecycle around the pipeline (``yh-edge run``).

- **One stop event** shared by every worker; SIGTERM and SIGINT both set it. On stop the pipeline
  finishes the songs in flight (they are stored, flagged truncated if cut), the publisher
  disconnects cleanly, every thread is joined with a timeout, and the process exits 0 -- or 1
  when detections could not be stored (held in memory at the end, or dropped).
- **Threads**: ``pipeline`` (pull the source, detect, segment, embed, store) and, when
  ``mqtt.enabled``, ``publisher`` (:class:`edge.adapters.mqtt.publisher.MqttPublisher`). The main thread
  supervises: systemd notifications, health log and file, store maintenance, retrying
  detections held in memory.
- **systemd** ``Type=notify``: ``READY=1`` once models and store are open, ``STATUS=`` lines,
  ``WATCHDOG=1`` only while the processing loop advances (a stalled pipeline is then restarted
  by systemd), ``STOPPING=1`` on the way out. Spoken directly on ``$NOTIFY_SOCKET``.
- **Capture restart**: the microphone source reopens the device itself after a loss (with
  backoff); if the pipeline thread dies of anything else, the daemon restarts it with backoff
  and exits non-zero (for ``Restart=on-failure``) only after repeated failures.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.app.health import write_health
from edge.app.notify import SystemdNotifier  # noqa: F401  (re-exported)
from edge.app.snapshot import build_snapshot, health_summary, status_line
from edge.app.web import start_status_page
from edge.core.config import Config
from edge.core.errors import YellowhammerError

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 8.0
MAX_PIPELINE_FAILURES = 5


class Daemon:
    """Runs the pipeline (and the publisher) until stopped.

    Parameters
    ----------
    config
        The edge configuration.
    once
        Exit when the audio source ends (replay) instead of idling until stopped.
    notifier
        systemd notifier (default: from the environment).
    components
        Pre-built :class:`edge.core.pipeline.Components` (tests); built from ``config`` otherwise.
    source_factory
        Makes the audio source (default: from ``config.audio``); called again on a restart.
    """

    def __init__(
        self,
        config: Config,
        once: bool = False,
        notifier: SystemdNotifier | None = None,
        components=None,
        source_factory: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        self.once = once
        self.notifier = notifier or SystemdNotifier()
        self.stop = threading.Event()
        self.started = time.time()
        self.state = "starting"
        self._components = components
        self._source_factory = source_factory
        self._source = None
        self._heartbeat = time.monotonic()
        self._pipeline_failures = 0
        self.publisher_restarts = 0
        # the publisher stops after the pipeline: the songs finished at stop are sent too
        self._publisher_stop = threading.Event()
        self._pipeline_restarts = 0
        self._source_finished = False
        self._failed: str | None = None
        self._last_error = ""
        self._publisher = None
        self._threads: list[threading.Thread] = []
        self._file_errors = 0
        self._problems: list[str] = []
        self.web = None  # the status page (edge.app.web), when served

    # -- wiring ---------------------------------------------------------------------------
    def _build(self) -> None:
        from edge.app.compose import build_pipeline, make_source

        if self._components is None:
            self._components = build_pipeline(self.config)
        sr = self._components.pipeline.frontend_cfg.sample_rate
        if self._source_factory is None:
            cfg = self.config

            def factory():
                return make_source(cfg, sr, on_error=self._on_file_error)

            self._source_factory = factory
        self._source = self._source_factory()  # config errors surface before READY

    def _on_file_error(self, path, exc) -> None:
        self._file_errors += 1

    @property
    def components(self):
        return self._components

    # -- health ---------------------------------------------------------------------------
    def health(self) -> dict:
        """Health figures for the log, the health file, the status page and the stats topic."""
        return build_snapshot(self)

    # -- threads --------------------------------------------------------------------------
    def _beat(self) -> None:
        self._heartbeat = time.monotonic()

    def _pipeline_loop(self) -> None:
        pipeline = self._components.pipeline
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if self._source is None:
                    self._source = self._source_factory()
                self.state = "running"
                pipeline.run(self._source, self.stop, heartbeat=self._beat)
                self._pipeline_failures = 0
            except YellowhammerError as exc:
                self._pipeline_failed(f"{exc}")
            except Exception as exc:  # noqa: BLE001 - keep recording whatever a stage throws
                log.exception("pipeline crashed")
                self._pipeline_failed(f"{type(exc).__name__}: {exc}")
            else:
                if self.stop.is_set():
                    break
                # the source ended by itself: a replay that has run out
                self._source_finished = True
                self.state = "finished"
                log.info(
                    "audio source finished after %.1f s of audio%s",
                    pipeline.stats.audio_seconds,
                    "" if self.once else "; idling until stopped",
                )
                if self.once:
                    self.stop.set()
                while not self.stop.wait(1.0):
                    self._beat()
                break
            if self._pipeline_failures >= MAX_PIPELINE_FAILURES:
                self._failed = (
                    f"pipeline failed {self._pipeline_failures} times in a row; last: {self._last_error}"
                )
                log.error("%s; giving up", self._failed)
                self.stop.set()
                break
            self._source = None  # capture restart: a fresh source (and device) next round
            self._pipeline_restarts += 1
            self.state = "restarting"
            log.warning("restarting capture and pipeline in %.0f s", backoff)
            if self.stop.wait(backoff):
                break
            backoff = min(backoff * 2, 60.0)

    def _pipeline_failed(self, msg: str) -> None:
        self._pipeline_failures += 1
        self._last_error = msg
        log.error("pipeline stopped: %s", msg)

    def _start_publisher(self) -> None:
        if not self.config.mqtt.enabled:
            return
        try:
            from edge.adapters.mqtt.publisher import MqttPublisher
        except ImportError as exc:
            log.error(
                "mqtt.enabled is set but the publisher is not available (%s); detections stay queued", exc
            )
            return
        c = self._components
        outbox = c.store
        if c.writer is not c.store:  # the persist-first writer: what it holds in memory is sent too
            from edge.adapters.store.held import OutboxWithHold

            outbox = OutboxWithHold(c.store, c.writer)
        try:
            self._publisher = MqttPublisher(self.config, outbox, self.health)
        except YellowhammerError as exc:
            log.error("mqtt: not syncing: %s (detections stay queued)", exc)
            return

        def run_publisher():
            backoff = 1.0
            while not self._publisher_stop.is_set():
                try:
                    self._publisher.run(self._publisher_stop)
                    return
                except Exception:  # noqa: BLE001 - a sync failure must never stop the recording
                    self.publisher_restarts += 1
                    log.exception("mqtt publisher crashed; restarting it in %.0f s (detections stay queued)",
                                  backoff)  # fmt: skip
                if self._publisher_stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 60.0)

        t = threading.Thread(target=run_publisher, name="publisher", daemon=True)
        t.start()
        self._threads.append(t)

    # -- main -----------------------------------------------------------------------------
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if not self.stop.is_set():
                log.info("received %s: stopping", signal.Signals(signum).name)
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)

    def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        from edge.adapters.store.housekeeping import maintain

        self._install_signals()
        self._build()
        c = self._components
        data_dir = Path(self.config.device.data_dir)
        hc = self.config.health
        log.info(
            "yellowhammer recorder %s starting: source %s, detector %s, encoder %s, database %s",
            self.config.device_id,
            getattr(self._source, "name", "?"),
            c.detector.version,
            c.encoder.version,
            getattr(c.store, "path", "?"),
        )
        worker = threading.Thread(target=self._pipeline_loop, name="pipeline", daemon=True)
        self._beat()
        worker.start()
        self._start_publisher()
        self.web = start_status_page(self)
        self.notifier.notify("READY=1", f"STATUS=listening ({getattr(self._source, 'name', '?')})")
        tick = 1.0
        if self.notifier.watchdog_s:
            tick = min(tick, self.notifier.watchdog_s / 3)
        next_health = time.monotonic()
        next_maint = time.monotonic() + min(60.0, hc.maintenance_interval_s)
        while not self.stop.wait(tick):
            now = time.monotonic()
            source_state = (self._source.stats().get("state") if self._source is not None else "") or ""
            alive = now - self._heartbeat < hc.stall_seconds or source_state.startswith("waiting")
            if alive:
                self.notifier.notify("WATCHDOG=1")
            elif self.notifier.watchdog_s:
                log.error(
                    "processing loop stalled for %.0f s: not pinging the watchdog", now - self._heartbeat
                )
            if c.writer.pending:
                c.writer.retry()
            if now >= next_health:
                snap = self.health()
                write_health(data_dir, snap)
                self.notifier.notify(f"STATUS={status_line(snap)}")
                log.info("health: %s", health_summary(snap))
                self._say_problems(snap.get("problems") or [])
                next_health = now + hc.log_interval_s
            if now >= next_maint:
                try:
                    done = maintain(
                        c.store, self.config.store.retention_days, self.config.store.min_free_mb, c.clips
                    )
                    if any(done.values()):
                        log.info("maintenance: %s", done)
                except YellowhammerError as exc:
                    log.error("maintenance failed: %s", exc)
                next_maint = now + hc.maintenance_interval_s
        return self._shutdown(worker)

    def _say_problems(self, now: list[str]) -> None:
        """A WARNING line when a problem appears (not at every health round), INFO when it clears."""
        for msg in now:
            if msg not in self._problems:
                log.warning("problem: %s", msg)
        if self._problems and not now:
            log.info("no problem left: %s cleared", "; ".join(self._problems))
        self._problems = list(now)

    def _shutdown(self, worker: threading.Thread) -> int:
        self.state = "stopping"
        self.notifier.notify("STOPPING=1", "STATUS=stopping: finishing the songs in flight")
        worker.join(JOIN_TIMEOUT_S)
        if worker.is_alive():
            log.error("pipeline thread did not stop within %.0f s", JOIN_TIMEOUT_S)
        c = self._components
        pending = c.writer.retry()
        self._publisher_stop.set()
        for t in self._threads:  # the publisher's last drain also sends what is held in memory
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                log.error("%s thread did not stop within %.0f s", t.name, JOIN_TIMEOUT_S)
        self.state = "stopped"
        snap = self.health()
        write_health(self.config.device.data_dir, snap)
        undelivered = getattr(c.writer, "undelivered", pending)
        lost = undelivered + c.writer.dropped
        if pending > undelivered:
            log.error("%d detections could not be stored on this device (%s); the server has them "
                      "(acknowledged by the broker)", pending - undelivered, c.writer.last_error)  # fmt: skip
        if undelivered:
            log.error("%d detections could not be stored before exit (they are lost): %s", undelivered,
                      c.writer.last_error)  # fmt: skip
        if c.writer.dropped:
            log.error("%d detections were dropped from the full memory hold", c.writer.dropped)
        log.info(
            "stopped: %.1f s of audio, %d songs this run, %d unsynced in the store",
            c.pipeline.stats.audio_seconds,
            c.pipeline.stats.songs,
            snap.get("backlog") or 0,
        )
        try:
            c.store.close()
        except YellowhammerError as exc:
            log.warning("closing the store: %s", exc)
        self.notifier.close()
        if self.web is not None:
            self.web.close()
        if self._failed or lost:
            return 1  # a daemon that lost detections must not look like a clean stop
        return 0
