"""Two ingest workers in one shared-subscription group split the stream; each detection stored once."""

from __future__ import annotations

import collections

import pytest

from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.sqlite import SqliteStore
from tests.sync.helpers import IngestThread, edge_config, fill_store, server_rows, wait_for


@pytest.mark.slow
def test_two_workers_share_the_stream(mqtt_broker, tmp_path):
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids = fill_store(edb, "dev-s", 400)
    with (
        IngestThread(mqtt_broker, sdb, client_id="w1", share_group="yh-ingest") as w1,
        IngestThread(mqtt_broker, sdb, client_id="w2", share_group="yh-ingest") as w2,
    ):
        store = SqliteStore(edb)
        assert MqttPublisher(edge_config(mqtt_broker, "dev-s", edb), store).publish_pending(timeout=60)[
            "drained"
        ]
        store.close()
        wait_for(lambda: len(server_rows(sdb)) >= 400, 60, what="all rows")
        n1, n2 = w1.ingestor.handler.totals.new, w2.ingestor.handler.totals.new
    rows = server_rows(sdb)
    assert len(rows) == 400 and set(collections.Counter(r[0] for r in rows)) == set(ids)
    assert n1 > 0 and n2 > 0 and n1 + n2 == 400  # the broker split the messages between them
