"""Shared infrastructure of the recorder, the model tools and the server.

Generic helpers with no recorder logic and no import-time side effects, so that ``server/``
and ``model_export/`` can use them beside the wire contract (``edge.contract``):
:mod:`~edge.kit.sqlite` (open, pragmas, migrations, transactions), :mod:`~edge.kit.files`
(atomic writes), :mod:`~edge.kit.mqtt` (paho client factory: TLS, credentials, backoff),
:mod:`~edge.kit.cli` (logging set up once, error mapping, output options).
"""
