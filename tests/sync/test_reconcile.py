"""Reconciliation pieces without a broker: the device's digest and requeue, the server's answer."""

from __future__ import annotations

import json
import time

import pytest

from edge.adapters.store.sqlite import SqliteStore
from edge.contract import ContractError, Digest, Resend
from server.ingest import MAX_RESEND_TRIES, Message, MessageHandler
from server.storage.sqlite import SqliteStorage

from .helpers import fill_store, load_into_server, quarantine_reasons, unsynced_count


def _bucket(t: float) -> int:
    return int(t // 3600)


def test_digest_counts_synced_per_hour_and_requeue_puts_them_back(tmp_path):
    edb = tmp_path / "edge.sqlite"
    fill_store(edb, "dev-d", 30)  # 7.3 s apart: all in one or two hours
    store = SqliteStore(edb)
    try:
        assert store.sync_digest(3600, since=0) == []  # nothing synced yet
        rows = store.unsynced(100)
        store.mark_synced([d.id for d in rows[:20]])
        digest = store.sync_digest(3600, since=time.time() - 60)
        expect: dict[int, int] = {}
        for d in rows[:20]:
            expect[_bucket(d.start_time)] = expect.get(_bucket(d.start_time), 0) + 1
        assert dict(digest) == expect
        assert store.sync_digest(3600, since=time.time() + 60) == []  # outside the window
        b = _bucket(rows[0].start_time)
        n = store.requeue_buckets(3600, [b])
        assert n == expect[b] and unsynced_count(edb) == 10 + n
        assert store.requeue_buckets(3600, [b]) == 0  # already queued: nothing twice
    finally:
        store.close()


@pytest.mark.parametrize("payload", [b"", b"x", b"[]", b'{"schema": 2, "bucket_s": 3600, "buckets": []}',
                                     b'{"schema": 1, "bucket_s": 1, "buckets": []}',
                                     b'{"schema": 1, "bucket_s": 3600, "buckets": ["1"]}',
                                     b'{"schema": 1, "bucket_s": 3600, "buckets": [-1]}'])  # fmt: skip
def test_device_refuses_malformed_resend_requests(payload):
    with pytest.raises(ContractError):
        Resend.from_payload(payload)


def test_server_asks_for_short_buckets_only_a_bounded_number_of_times(tmp_path):
    from .helpers import make_detection

    storage = SqliteStorage(tmp_path / "server.sqlite")
    try:
        dets = [make_detection("dev-d", i) for i in range(10)]
        load_into_server(storage, dets)
        b = _bucket(dets[0].start_time)
        have = sum(1 for d in dets if _bucket(d.start_time) == b)
        h = MessageHandler(storage)

        def digest(n: int) -> Message:
            body = {"schema": 1, "device_id": "dev-d", "time": 0, "bucket_s": 3600, "counts": [[b, n]]}
            return Message("yh/v1/dev-d/digest", json.dumps(body).encode())

        h.handle([digest(have)])
        assert h.resend_requests == []  # complete
        for _ in range(MAX_RESEND_TRIES + 2):
            h.handle([digest(have + 1)])
        assert len(h.resend_requests) == MAX_RESEND_TRIES  # then it gives up on that hour
        topic, payload = h.resend_requests[0]
        assert topic == "yh/v1/dev-d/resend" and json.loads(payload) == {"schema": 1, "bucket_s": 3600,
                                                                           "buckets": [b]}  # fmt: skip
        assert Resend.from_payload(payload) == Resend(3600, (b,))
        # malformed or forged digests are quarantined, never answered
        h.resend_requests.clear()
        h.handle([Message("yh/v1/dev-d/digest", b"{nope"),
                  Message("yh/v1/dev-x/digest", digest(99).payload),
                  Message("yh/v1/dev-d/digest", b'{"schema":1,"device_id":"dev-d","bucket_s":3600,"counts":[[1,-1]]}')])  # fmt: skip
        assert h.resend_requests == []
        assert len(quarantine_reasons(tmp_path / "server.sqlite")) == 3
    finally:
        storage.close()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"schema": 1, "device_id": "dev-d", "bucket_s": 59, "counts": []}', "bucket_s must be an integer"),
        (
            b'{"schema": 1, "device_id": "dev-d", "bucket_s": 3600.0, "counts": []}',
            "bucket_s must be an integer",
        ),
        (b'{"schema": 1, "device_id": "dev-d", "bucket_s": 3600, "counts": {}}', "counts must be a list"),
        (b'{"schema": 1, "device_id": "dev-d", "bucket_s": 3600, "counts": [[1]]}', "each count must be"),
        (b'{"schema": 1, "device_id": "dev-e", "bucket_s": 3600, "counts": []}', "does not match the topic"),
    ],
)
def test_server_rejects_malformed_digests_with_a_reason(payload, reason):
    with pytest.raises(ContractError, match=reason):
        Digest.from_payload(payload, "dev-d")
    good = Digest.from_payload(
        b'{"schema": 1, "device_id": "dev-d", "bucket_s": 3600, "counts": [[5, 2]]}', "dev-d"
    )
    assert (good.bucket_s, good.counts) == (3600, ((5, 2),))
