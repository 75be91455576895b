"""Validation and storage of received messages, independent of the broker (the MQTT loop is
:class:`server.ingest.Ingestor`; ``yh-server import`` uses the same path).

Reconciliation: devices publish a ``digest`` (synced detections per hour of ``start_time``);
where the server holds fewer of that device's detections in an hour, it publishes a ``resend``
request naming those hours, and the device queues them again. This recovers what a broker
acknowledged and then lost (a crash before its autosave, a shared subscription it forgot, a
full queue). A request for the same hour is repeated at most ``MAX_RESEND_TRIES`` times in a
row, so a detection that keeps being quarantined does not make a device resend forever.

Clips: the pieces of a song's audio clip (topic ``clip``) are stored as they come and assembled
once complete (size and sha256 checked; a clip that fails is quarantined). A clip belongs to its
detection's device: a piece from another device is quarantined; the pieces of a detection not
stored yet wait for it (the clip is assembled when it arrives). A digest lists the clips a device
uploaded recently; those of its own songs the server lacks are asked for again (``clip_request``),
at most 3 times each. :meth:`MessageHandler.request_clips` asks devices for clips (e.g. the
members of a candidate new dialect).

Deployments: a device's stats carry where it stands; each detection its position. The storage
keeps one deployment per device and position.

Never lose a message, never stop on one: everything that fails validation is quarantined with
its reason; an unexpected error while handling one message only quarantines that message; a
batch whose store fails is stored message by message, and the message whose store fails is
quarantined alone (a database that takes not even a quarantine row is the fault: the batch is
retried). A detection id resent with other content is quarantined; retained messages on data
topics are ignored. A damaged database (:class:`StorageCorruptError`) stops the ingest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from edge.contract import (
    ClipChunk,
    ContractError,
    Detection,
    Digest,
    Stats,
    Status,
    Topics,
)

from .reconcile import Reconcile
from .storage import RAW_KEEP, Storage, StorageCorruptError, StorageError, WriteResult

#: the server's name for a message that breaks the contract (it is quarantined with the reason)
Reject = ContractError

log = logging.getLogger("server.ingest")


@dataclass
class Message:
    """A received message, independent of paho (tests and import feed these directly)."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    retain: bool = False
    origin: str = "mqtt"  # what a quarantine row names as its origin


class MessageHandler(Reconcile):
    """Validates and stores batches of messages; the part of ingest that needs no broker."""

    def __init__(self, storage: Storage, prefix: str = "yh/v1") -> None:
        self.storage = storage
        self.topics = Topics(prefix)
        self.prefix = self.topics.prefix
        self._dims = storage.encoder_dims()
        self.totals = WriteResult()
        self.resend_requests: list[tuple[str, bytes]] = []  # (topic, payload) for the MQTT side
        self.clips_completed = 0
        self.retained_ignored = 0  # retained messages on data topics, skipped
        self._retained_seen: set[str] = set()
        self._resend_tries: dict[tuple[str, int], int] = {}

    def _learn_dims(self, rows: list[dict]) -> None:
        """After a write: the dimensions of encoder versions this handler had not seen (the
        storage registers a version with the first detection it *stores*, in the same
        transaction, so a quarantined message registers nothing)."""
        if all(r["encoder_version"] in self._dims for r in rows):
            return
        try:
            dims = self.storage.encoder_dims()
        except StorageCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001  the batch is stored; the storage checks dims anyway
            log.warning("ingest: cannot read the registered encoder versions: %s", str(exc)[:300])
            return
        for version, dim in dims.items():
            if version not in self._dims:
                self._dims[version] = dim
                log.info("ingest: new encoder version %s with %d-d embeddings", version, dim)

    def check_detection(self, payload, topic_device: str | None) -> dict:
        """Decode and check one detection (bytes or a parsed dict); returns the storage row or raises Reject.

        An encoder version's dimension is checked here against the registered one; a version not
        registered yet is registered by the storage when it stores the detection (and checked
        there again against a version registered meanwhile)."""
        d = Detection.from_payload(payload, topic_device)
        known = self._dims.get(d.encoder_version, d.embedding_dim)
        if known != d.embedding_dim:
            raise Reject(
                f"embedding dim {d.embedding_dim} does not match dim {known} registered for encoder {d.encoder_version}"
            )
        row = d.to_row()
        row["schema"] = 1
        return row

    def handle(self, messages: Iterable[Message]) -> WriteResult:
        """Validate and store a batch in one transaction (status/stats are applied directly).

        Never raises on message content: a message that fails validation, or whose store fails
        while the database still takes a quarantine row, is quarantined with its reason. Raises
        :class:`StorageError` only when the database itself fails (the batch is then retried whole,
        unacknowledged), :class:`StorageCorruptError` when the database file is damaged."""
        b = _Batch()
        for m in messages:
            try:
                self._one(m, b)
            except StorageCorruptError:
                raise
            except Reject as exc:
                b.rejects.append(self._reject(m, str(exc)))
            except StorageError as exc:  # status/stats/deployment: its own write failed
                b.rejects.append(self._store_failed(m, exc))
            except Exception as exc:  # a bug must not let one hostile message stop ingest
                log.exception("ingest: unexpected error on a message from %r", m.topic[:200])
                b.rejects.append(self._reject(m, f"internal error: {type(exc).__name__}"))
        self._check_resends(b)
        if b.pieces:
            self._store_pieces(b)
        result = self._write(b)
        self._settle_clips(b)
        self.totals.new += result.new
        self.totals.duplicate += result.duplicate
        self.totals.quarantined += result.quarantined
        self.retained_ignored += b.retained
        for digest in b.digests:  # after the write: this batch's detections count
            try:
                self._answer_digest(*digest)
            except StorageCorruptError:
                raise
            except Exception as exc:  # noqa: BLE001  the batch is stored: never retried for a digest
                log.error("ingest: cannot answer the digest of %s: %s", digest[0], str(exc)[:300])
        return result

    def _one(self, m: Message, b: _Batch) -> None:
        """Validate one message into the batch (status, stats and deployments are written now)."""
        device, kind = self.topics.parse(m.topic)
        if m.retain and self._retained(m, device, kind):
            b.retained += 1
            return
        if kind == "detections":
            row = self.check_detection(m.payload, device)
            row["origin"] = f"mqtt:{m.topic}"
            row["_raw"] = m.payload[:2048]
            b.rows.append(row)
            b.sources.append(m)
        elif kind == "status":
            self.storage.set_device_status(device, Status.from_payload(m.payload).state)
        elif kind == "stats":
            st = Stats.from_payload(m.payload, device)
            if st.body.get("doctor") is True:
                # `yh-edge doctor`'s test publish: proof the account may write, not the device's
                # figures; keeping it would replace the device's real latest stats
                log.info("ingest: %s: doctor test message received (not kept as the device's stats)", device)
                return
            self.storage.set_device_stats(device, json.dumps(st.body, separators=(",", ":")))
            dep = st.deployment
            if dep is not None and dep.placed:
                self.storage.set_device_deployment(device, dep.to_dict(), st.time)
        elif kind == "digest":
            dg = Digest.from_payload(m.payload, device)
            b.digests.append((device, dg.bucket_s, list(dg.counts), dg.clips))
        elif kind == "clip":
            c = ClipChunk.from_payload(m.payload, device)
            b.pieces.append(({k: getattr(c, k) for k in c.__slots__}, m))
        else:
            raise Reject(f"unknown message kind {kind[:40]!r}")

    def _retained(self, m: Message, device: str, kind: str) -> bool:
        """Whether to skip a retained message: on data topics (detections, digest, clip) it is the
        broker's old copy, sent again at every subscription, never new data; status and stats are
        retained by design and applied (a malformed retained one was quarantined when it was live)."""
        if kind in ("status", "stats"):
            try:
                (
                    Status.from_payload(m.payload)
                    if kind == "status"
                    else Stats.from_payload(m.payload, device)
                )
                return False
            except Exception:  # noqa: BLE001  malformed: not applied again at each subscription
                pass
        if m.topic not in self._retained_seen and len(self._retained_seen) < 10_000:
            self._retained_seen.add(m.topic)
            log.warning("ingest: ignoring a retained message on %s (retained messages are not data; clear "
                        "it with: mosquitto_pub -r -n -t '%s')", m.topic[:200], m.topic[:200])  # fmt: skip
        return True

    def _check_resends(self, b: _Batch) -> None:
        """A detection id sent again with *different* content (another song under a known id) is
        quarantined, within the batch and against the stored copy; the first copy is kept."""
        if not b.rows:
            return
        try:
            stored = {r["id"]: r for r in self.storage.iter_detections(ids=[r["id"] for r in b.rows],
                                                                       with_embedding=True)}  # fmt: skip
        except StorageCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001  (the write below meets the same failure)
            log.warning("ingest: cannot compare resent detections with their stored copies: %s", exc)
            stored = {}
        keep, keep_src = [], []
        for row, m in zip(b.rows, b.sources, strict=True):
            first = stored.get(row["id"])
            why = _differs(first, row) if first is not None else None
            if why and first["device_id"] == row["device_id"]:
                log.warning("ingest: detection id %s sent again with different %s; the stored copy is kept",
                            row["id"], why)  # fmt: skip
                b.rejects.append(self._reject(m, f"detection id {row['id']} sent again with different {why} "
                                                 "(the first copy is kept)"))  # fmt: skip
                continue
            stored.setdefault(row["id"], {**row, "embedding": _emb(row["embedding"])})
            keep.append(row)
            keep_src.append(m)
        b.rows, b.sources = keep, keep_src

    def _store_pieces(self, b: _Batch) -> None:
        """Store the batch's clip pieces; a piece the storage refuses (another device's detection),
        or the message completing a clip that fails its check, is quarantined with the reason."""
        try:
            results = [(b.pieces, self.storage.write_clip_pieces([p for p, _ in b.pieces]))]
        except StorageCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001  one by one: a piece that cannot be stored is quarantined
            results = []
            for p, m in b.pieces:
                try:
                    results.append(([(p, m)], self.storage.write_clip_pieces([p])))
                except StorageCorruptError:
                    raise
                except Exception as exc1:  # noqa: BLE001
                    b.rejects.append(self._store_failed(m, exc1))
            log.warning("ingest: a batch of clip pieces failed (%s); stored them one by one", exc)
        for pieces, done in results:
            self.clips_completed += len(done["completed"])
            refused = dict(done.get("refused", ()))
            for k, why in refused.items():
                log.warning("ingest: %s", why)
                b.rejects.append(self._reject(pieces[k][1], why))
            for det_id, why in done["bad"]:
                m = next(
                    m for k, (p, m) in enumerate(pieces) if k not in refused and p["detection_id"] == det_id
                )
                b.rejects.append(self._reject(m, why))

    def _settle_clips(self, b: _Batch) -> None:
        """After the write: assemble the pending clips of the batch's detections and pieces (a
        clip may arrive before its detection; whichever is stored last finds the other)."""
        ids = {r["id"] for r in b.rows} | {p["detection_id"] for p, _ in b.pieces}
        if not ids:
            return
        try:
            done = self.storage.settle_clips(ids)
        except StorageCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001  the batch is stored; a later batch settles them
            log.error("ingest: cannot assemble pending clips: %s", str(exc)[:300])
            return
        self.clips_completed += len(done["completed"])
        for _, why in done["bad"]:
            log.warning("ingest: %s (quarantined)", why)

    def _write(self, b: _Batch) -> WriteResult:
        """Write the batch; if that fails, write its messages one by one so that a message whose
        store fails is quarantined and the others are stored (poison never blocks the batch)."""
        try:
            out = self.storage.write_batch([dict(r) for r in b.rows], list(b.rejects))
        except StorageCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001  isolated below
            log.warning("ingest: storing a batch of %d failed (%s); storing its messages one by one",
                        len(b.rows) + len(b.rejects), str(exc)[:300])  # fmt: skip
            out = WriteResult()
            for row, m in zip(b.rows, b.sources, strict=True):
                _add(out, self._write_one(row, m))
            for r in b.rejects:
                _add(out, self._quarantine_one(r))
        if out.new:
            self._learn_dims(b.rows)
        return out

    def _write_one(self, row: dict, m: Message) -> WriteResult:
        """One detection alone, tried twice (a passing lock or hiccup is not the message's
        fault); quarantined if it still fails while the database takes the quarantine row."""
        for attempt in (1, 2):
            try:
                return self.storage.write_batch([dict(row)], [])
            except StorageCorruptError:
                raise
            except Exception as exc:  # noqa: BLE001
                if attempt == 2:
                    return self._quarantine_one(self._store_failed(m, exc))
        raise AssertionError("unreachable")

    def _quarantine_one(self, reject: dict) -> WriteResult:
        """Quarantine one message; if even that fails, once more with only its reason and a safe
        copy of its topic and payload. A database that takes neither is at fault: StorageError."""
        try:
            return self.storage.write_batch([], [reject])
        except StorageCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001
            safe = {"reason": _ascii(reject.get("reason", ""), 500), "topic": _ascii(reject.get("topic", ""), 500),
                    "origin": _ascii(reject.get("origin", ""), 100), "payload": _bytes(reject.get("payload")),
                    "size": int(reject.get("size") or 0)}  # fmt: skip
            try:
                return self.storage.write_batch([], [safe])
            except StorageError:
                raise
            except Exception as exc2:  # noqa: BLE001
                raise StorageError(f"cannot even quarantine a message ({exc}; {exc2})") from None

    def _store_failed(self, m: Message, exc: BaseException) -> dict:
        log.error("ingest: storing a message from %r failed, quarantined: %s", m.topic[:200], str(exc)[:300])
        return self._reject(m, f"store failed: {_ascii(str(exc), 300)}")

    @staticmethod
    def _reject(m: Message, reason: str) -> dict:
        log.debug("ingest: quarantined a message on %r: %s", m.topic[:200], reason)
        return {"reason": reason, "topic": m.topic[:500], "origin": m.origin, "payload": m.payload[:2048],
                "size": len(m.payload)}  # fmt: skip


@dataclass
class _Batch:
    """What one batch of messages holds once validated."""

    rows: list[dict] = field(default_factory=list)
    sources: list[Message] = field(default_factory=list)  # the message of each row
    rejects: list[dict] = field(default_factory=list)
    pieces: list[tuple[dict, Message]] = field(default_factory=list)
    digests: list[tuple[str, int, list[tuple[int, int]], tuple[str, ...]]] = field(default_factory=list)
    retained: int = 0


def _emb(value) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.frombuffer(bytes(value), dtype="<f4")


def _differs(first: dict, row: dict) -> str | None:
    """What makes ``row`` another song than ``first`` (same id), or None for the same song
    (times within 1 ms, embeddings within float16 rounding)."""
    out = [k for k in ("device_id", "encoder_version") if first.get(k) != row.get(k)]
    out += [k for k in ("start_time", "end_time") if abs(float(first[k]) - float(row[k])) > 1e-3]
    a, b = _emb(first["embedding"]), _emb(row["embedding"])
    if a.shape != b.shape or float(np.max(np.abs(a - b), initial=0.0)) > 2e-3:
        out.append("embedding")
    return ", ".join(out) or None


def _add(total: WriteResult, res: WriteResult) -> None:
    total.new += res.new
    total.duplicate += res.duplicate
    total.quarantined += res.quarantined


def _ascii(value, limit: int) -> str:
    """Text any database takes: non-ASCII and control characters as escapes."""
    text = value if isinstance(value, str) else str(value)
    return repr(text)[1:-1].encode("ascii", "backslashreplace").decode("ascii")[:limit]


def _bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)[:RAW_KEEP]
    return str(value or "").encode("utf-8", "backslashreplace")[:RAW_KEEP]
