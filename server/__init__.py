"""Yellowhammer dialect monitor: the server (MQTT ingest, storage, HDBSCAN dialect discovery,
researcher access). Heavy dependencies (scikit-learn, matplotlib, pyarrow; the ``server`` extra)
are imported inside the commands that need them."""
