"""``python -m server.cli``: the same as ``yh-server``."""

from server.cli import main

main()
