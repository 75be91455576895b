"""``python -m edge``: the ``yh-edge`` command line."""

if __name__ == "__main__":
    from edge.app.cli import main

    main()
