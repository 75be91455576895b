"""Clips: the shared storage methods (:class:`ClipsSql`, a part of :class:`.sql.SqlStorage`)
that assemble clip pieces into checked clips and keep the clips asked of devices.

A clip belongs to its detection's device: a piece from another device is refused (to be
quarantined), never stored under that detection. Pieces of a detection not stored yet are kept
pending (a clip may overtake its detection: another ingest worker, a detection the broker lost
and the device resends); the clip is assembled once the detection is stored and only from its
own device's pieces (:meth:`ClipsSql.settle_clips`). Clips are asked only of a detection's own
device.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

from server.errors import StorageError
from server.storage import in_parts

#: origin of the quarantine rows of clip pieces or clips found wrong after they were stored
STORED_ORIGIN = "stored clip"
#: the pieces (``p``) of an expired clip, given the cutoff time twice: received before it, no
#: piece of that clip from that device received since, and the clip still incomplete
EXPIRED = (
    "p.received_at < ? AND NOT EXISTS (SELECT 1 FROM clip_pieces q WHERE q.detection_id = p.detection_id "
    "AND q.device_id = p.device_id AND q.received_at >= ?) AND (SELECT COUNT(*) FROM clip_pieces q WHERE "
    "q.detection_id = p.detection_id AND q.device_id = p.device_id AND q.n = p.n AND q.sha256 = p.sha256) < p.n"
)


class ClipsSql:
    """Clip pieces, clips and clip requests (uses the backend's ``db``, ``_tx()``, ``_rows()``,
    ``_owners()`` and ``_quarantine()``)."""

    def write_clip_pieces(self, pieces: list[dict]) -> dict:
        """Store clip pieces (keys of :class:`edge.contract.ClipChunk`) in one transaction; a clip
        whose pieces are all present, and whose detection is stored with the pieces' device, is
        assembled, checked (size, sha256) and moved to ``clips``.

        Returns ``{"stored": n, "completed": [ids], "bad": [(id, reason)], "known": n,
        "refused": [(index in pieces, reason)]}``: a clip that fails its check is dropped (its
        pieces deleted) and reported, to be quarantined; a piece of a clip the server already
        holds from that device only counts as ``known``; a piece from a device other than its
        detection's (or, for a detection not stored yet, other than the device whose pieces of it
        are already arriving) is refused, to be quarantined."""
        out: dict = {"stored": 0, "completed": [], "bad": [], "known": 0, "refused": []}
        now = time.time()
        with self._tx():
            ids = sorted({p["detection_id"] for p in pieces})
            owners, held = self._owners(ids), self._clip_devices(ids)
            touched: dict[str, dict] = {}
            for k, p in enumerate(pieces):
                i, dev = p["detection_id"], p["device_id"]
                why = self._refuse_piece(i, dev, owners.get(i), now)
                if why:
                    out["refused"].append((k, why))
                    continue
                if held.get(i) == dev:
                    out["known"] += 1
                    continue
                self.db.execute(
                    "INSERT OR REPLACE INTO clip_pieces(detection_id, seq, device_id, n, size, sha256, codec, rate, "
                    "offset, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [i, p["seq"], dev, p["n"], p["size"], p["sha256"], p["codec"], p["rate"], p["offset"],
                     p["data"], now],
                )  # fmt: skip
                out["stored"] += 1
                touched[i] = p
            for i, p in touched.items():
                if owners.get(i) == p["device_id"]:  # else pending until its detection is stored
                    self._assemble(i, p, now, out)
        return out

    def settle_clips(self, detection_ids: Iterable[str]) -> dict:
        """Pending clip pieces of these detections, now that the detections may be stored: the
        pieces of a device other than the detection's are quarantined (one row per device, with
        the reason) and deleted; a clip complete from the detection's own device is assembled and
        checked (one that fails is quarantined). Returns ``{"completed": [ids], "bad": [(id,
        reason)]}``. Run after storing detections and after storing pieces (whichever of a
        detection and its clip is stored last finds the other)."""
        out: dict = {"completed": [], "bad": [], "known": 0}
        ids, pending = sorted(set(detection_ids)), []
        for part in in_parts(ids):  # a read first: most batches have no pending pieces
            pending += [r["detection_id"] for r in self._rows(
                f"SELECT DISTINCT detection_id FROM clip_pieces WHERE detection_id IN ({','.join('?' * len(part))})",
                part)]  # fmt: skip
        if not pending:
            return out
        now = time.time()
        with self._tx():
            for i in pending:
                rows = self.db.execute(
                    "SELECT p.device_id, d.device_id, p.n, p.sha256, COUNT(*), MIN(p.size), MIN(p.codec), "
                    "MIN(p.rate) FROM clip_pieces p JOIN detections d ON d.id = p.detection_id WHERE "
                    "p.detection_id = ? GROUP BY p.device_id, d.device_id, p.n, p.sha256", [i]).fetchall()  # fmt: skip
                for dev, owner, n, sha, have, size, codec, rate in rows:
                    if dev != owner:
                        self._drop_foreign_pieces(i, owner, now)
                        continue
                    if have < n:
                        continue
                    p = {"device_id": dev, "n": n, "sha256": sha, "size": size, "codec": codec, "rate": rate}
                    data, why = self._assemble(i, p, now, out)
                    if why:
                        self._quarantine([{"reason": why, "origin": STORED_ORIGIN, "topic": "", "payload": data,
                                           "size": len(data)}], now)  # fmt: skip
        return out

    def expire_clip_pieces(self, max_age_s: float) -> dict:
        """Delete the pieces of every clip still incomplete whose newest piece arrived more than
        ``max_age_s`` ago (an upload that stopped: the device lost the clip or its owner turned
        uploads off); each such clip is quarantined (one row: the reason and its first piece). A
        clip whose pieces are all present (held, or waiting for its detection) is never touched.
        Returns ``{"clips": n, "pieces": n, "expired": [(detection id, device)]}`` deleted.

        Atomic beside other ingest workers: the clips are found and deleted by one condition
        (:data:`EXPIRED`), in one transaction that keeps every other writer of ``clip_pieces``
        out (SQLite's write transaction; on PostgreSQL a table lock), so a piece stored meanwhile
        by another worker (an upload resuming) is never deleted with the old ones, and a clip
        another worker completed meanwhile is never quarantined as expired."""
        now, cutoff = time.time(), time.time() - max_age_s
        with self._tx():
            self._lock_table("clip_pieces")
            dropped = self._drop_pieces(EXPIRED, [cutoff, cutoff], now, lambda i, dev, k, n: (
                f"incomplete clip of {i} from device {dev} expired: {k} of {n} pieces, none received for "
                f"{max_age_s:g} s (mqtt.clip_pieces_max_age_h)"))  # fmt: skip
        return {"clips": len(dropped), "pieces": sum(k for _, _, k in dropped),
                "expired": [(i, dev) for i, dev, _ in dropped]}  # fmt: skip

    def _clip_devices(self, ids: list[str]) -> dict[str, str]:
        """Within a transaction: the device of each clip held of these detections."""
        out: dict[str, str] = {}
        for part in in_parts(ids):
            out.update(self.db.execute(
                f"SELECT detection_id, device_id FROM clips WHERE detection_id IN ({','.join('?' * len(part))})",
                part).fetchall())  # fmt: skip
        return out

    def _refuse_piece(self, i: str, dev: str, owner: str | None, now: float) -> str | None:
        """Within a transaction: why a piece of ``dev``'s clip of detection ``i`` is refused, or
        None. Pending pieces of another device are quarantined once ``dev`` is known to own ``i``."""
        if owner is not None and owner != dev:
            return f"clip of {i} from device {dev}: detection {i} belongs to device {owner}"
        other = self.db.execute(
            "SELECT device_id FROM clip_pieces WHERE detection_id = ? AND device_id <> ? LIMIT 1", [i, dev]
        ).fetchone()
        if other is None:
            return None
        if owner is None:
            return (f"clip of {i} from device {dev}: pieces of a clip of {i} are already arriving from device "
                    f"{other[0]} and detection {i} is not stored yet")  # fmt: skip
        self._drop_foreign_pieces(i, owner, now)
        return None

    def _drop_foreign_pieces(self, i: str, owner: str, now: float) -> None:
        """Within a transaction: quarantine (one row per device: the reason and the first piece)
        and delete the pending pieces of detection ``i`` from devices other than its ``owner``."""
        self._drop_pieces("p.detection_id = ? AND p.device_id <> ?", [i, owner], now, lambda i, dev, k, n: (
            f"clip of {i} from device {dev} ({k} pieces): detection {i} belongs to device {owner}"))  # fmt: skip

    def _drop_pieces(self, where: str, args: list, now: float, reason: Callable[[str, str, int, int], str]):
        """Within a transaction: quarantine and delete the clip pieces ``p`` matching ``where``,
        one quarantine row per clip (``reason(detection id, device, pieces, n)`` and its first
        piece). Exactly the pieces read are deleted (and only while they still match), so the
        quarantine tells what was deleted: a piece another worker stores meanwhile stays for the
        next pass, and one changed meanwhile rolls the transaction back. Returns ``[(detection
        id, device, pieces)]`` of the clips dropped."""
        clips: dict[tuple, list] = {}
        for i, dev, n, sha, seq, size in self.db.execute(
            f"SELECT p.detection_id, p.device_id, p.n, p.sha256, p.seq, length(p.data) FROM clip_pieces p WHERE "
            f"{where} ORDER BY p.detection_id, p.device_id, p.seq", args).fetchall():  # fmt: skip
            clips.setdefault((i, dev, n, sha), []).append((seq, size or 0))
        out = []
        for (i, dev, n, _sha), pieces in clips.items():
            seqs = [q for q, _ in pieces]
            first = self.db.execute(
                "SELECT data FROM clip_pieces WHERE detection_id = ? AND seq = ?", [i, seqs[0]]
            ).fetchone()
            gone = sum(self.db.execute(
                f"DELETE FROM clip_pieces AS p WHERE p.detection_id = ? AND p.seq IN ({','.join('?' * len(part))}) "
                f"AND {where}", [i, *part, *args]).rowcount for part in in_parts(seqs))  # fmt: skip
            if gone != len(seqs):
                raise StorageError(f"the pieces of the clip of {i} from device {dev} changed while they were "
                                   f"deleted ({gone} of {len(seqs)}); tried again later")  # fmt: skip
            self._quarantine([{"reason": reason(i, dev, len(seqs), n), "origin": STORED_ORIGIN, "topic": "",
                               "payload": bytes(first[0]) if first else b"",
                               "size": sum(k for _, k in pieces)}], now)  # fmt: skip
            out.append((i, dev, len(seqs)))
        return out

    def _assemble(self, i: str, p: dict, now: float, out: dict) -> tuple[bytes, str | None]:
        """Within a transaction: assemble ``p['device_id']``'s clip of detection ``i`` if all its
        pieces are present, check it and move it to ``clips`` (a clip of another device held
        under ``i`` is quarantined first); a clip failing its check goes to ``out['bad']``.
        Returns the assembled bytes (empty while pieces are missing) and why the clip failed."""
        dev = p["device_id"]
        rows = self.db.execute(
            "SELECT seq, n, size, sha256, offset, data FROM clip_pieces WHERE detection_id = ? AND device_id = ? "
            "AND n = ? AND sha256 = ? ORDER BY seq", [i, dev, p["n"], p["sha256"]]).fetchall()  # fmt: skip
        if len(rows) < p["n"]:
            return b"", None
        data = b"".join(bytes(r[5]) for r in rows)
        offsets_ok = all(r[4] == sum(len(bytes(q[5])) for q in rows[:k]) for k, r in enumerate(rows))
        why = None
        if len(data) != p["size"] or not offsets_ok:
            why = f"clip of {i}: pieces add up to {len(data)} bytes, expected {p['size']}"
        elif hashlib.sha256(data).hexdigest() != p["sha256"]:
            why = f"clip of {i}: sha256 does not match its pieces"
        self.db.execute("DELETE FROM clip_pieces WHERE detection_id = ? AND device_id = ?", [i, dev])
        if why:
            out["bad"].append((i, why))
            return data, why
        wrong = self.db.execute(
            "SELECT device_id, size, data FROM clips WHERE detection_id = ? AND device_id <> ?", [i, dev]
        ).fetchone()
        if wrong is not None:  # held before clips were checked against their detection's device
            self._quarantine([{"reason": f"clip of {i} from device {wrong[0]} replaced by the clip of its "
                               f"detection's device {dev}", "origin": STORED_ORIGIN, "topic": "",
                               "payload": bytes(wrong[2]), "size": int(wrong[1] or 0)}], now)  # fmt: skip
            self.db.execute("DELETE FROM clips WHERE detection_id = ?", [i])
        self.db.execute(
            "INSERT OR IGNORE INTO clips(detection_id, device_id, codec, rate, size, sha256, data, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [i, dev, p["codec"], p["rate"], p["size"], p["sha256"], data, now],
        )
        self.db.execute("DELETE FROM clip_requests WHERE detection_id = ?", [i])
        out["completed"].append(i)
        return data, None

    def clip(self, detection_id: str) -> dict | None:
        """A whole clip: ``detection_id, device_id, codec, rate, size, sha256, data, received_at``;
        only one from the detection's own device (as :meth:`clip_ids`)."""
        rows = self._rows(
            "SELECT c.* FROM clips c LEFT JOIN detections d ON d.id = c.detection_id WHERE c.detection_id = ? "
            "AND (d.device_id IS NULL OR d.device_id = c.device_id)", [detection_id])  # fmt: skip
        if rows:
            rows[0]["data"] = bytes(rows[0]["data"])
        return rows[0] if rows else None

    def clip_ids(self, detection_ids: Iterable[str]) -> set[str]:
        """Which of these detections the server holds a clip of (from the detection's own device:
        a clip another device sent before clips were checked does not count, so the detection's
        device is asked for its own)."""
        ids, out = list(detection_ids), set()
        for part in in_parts(ids):
            out |= {r["detection_id"] for r in self._rows(
                "SELECT c.detection_id FROM clips c LEFT JOIN detections d ON d.id = c.detection_id WHERE "
                f"c.detection_id IN ({','.join('?' * len(part))}) AND (d.device_id IS NULL OR "
                "d.device_id = c.device_id)", part)}  # fmt: skip
        return out

    def note_clip_requests(self, device_id: str, detection_ids: Iterable[str], why: str) -> list[str]:
        """Record that clips were asked of a device; returns the ids asked for fewer than 3 times
        (the ones to put in the request). A detection stored from another device is never asked
        of this one (a device may only name its own songs' clips, e.g. in its digest); an id not
        stored yet is asked of this device (its clip is kept pending until the detection
        arrives). A request that named another device for the id moves to this one, its count
        restarted."""
        now, out = time.time(), []
        ids = list(dict.fromkeys(detection_ids))
        with self._tx():
            owners = self._owners(ids)
            for i in ids:
                if owners.get(i, device_id) != device_id:
                    continue
                row = self.db.execute(
                    "SELECT tries, device_id FROM clip_requests WHERE detection_id = ?", [i]
                ).fetchone()
                tries = (row[0] if row and row[1] == device_id else 0) + 1
                if tries > 3:
                    continue
                self.db.execute(
                    "INSERT INTO clip_requests(detection_id, device_id, requested_at, tries, why, sent_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT(detection_id) DO UPDATE SET device_id = "
                    "excluded.device_id, requested_at = excluded.requested_at, tries = excluded.tries, "
                    "why = excluded.why, sent_at = NULL",
                    [i, device_id, now, tries, why],
                )
                out.append(i)
        return out

    def clip_requests(self) -> list[dict]:
        return self._rows("SELECT * FROM clip_requests ORDER BY requested_at DESC")

    def unsent_clip_requests(self) -> dict[str, list[str]]:
        """Clip requests not yet published: device -> detection ids."""
        out: dict[str, list[str]] = {}
        for r in self._rows(
            "SELECT device_id, detection_id FROM clip_requests WHERE sent_at IS NULL ORDER BY requested_at"
        ):
            out.setdefault(r["device_id"], []).append(r["detection_id"])
        return out

    def mark_clip_requests_sent(self, detection_ids: Iterable[str]) -> None:
        ids, now = list(detection_ids), time.time()
        with self._tx():
            for part in in_parts(ids):
                self.db.execute(
                    f"UPDATE clip_requests SET sent_at = ? WHERE detection_id IN ({','.join('?' * len(part))})",
                    [now, *part],
                )
