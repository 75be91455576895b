"""The CLI kit of ``yh-edge``, ``yh-model`` and ``yh-server``.

- :func:`setup_logging`: the one place logging is configured (stderr, so journald keeps it), once
  per process; chatty libraries stay at WARNING.
- :class:`Group`: a click group that turns the expected errors of its package (a tuple of
  exception types given at creation) into one-line ``click.ClickException`` messages in every
  sub-command, and runs cleanups registered on the click context.
- :func:`json_option`: the ``--json`` flag of commands whose output a script reads.
"""

from __future__ import annotations

import logging
import sys

import click

_CONFIGURED = False
QUIET_LIBRARIES = ("matplotlib", "PIL", "numba", "h5py", "absl", "tensorflow", "urllib3")


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Configure the root logger for this CLI process (first call wins)."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    _CONFIGURED = True


class Group(click.Group):
    """A click group whose commands report ``expected`` errors in one line, without a traceback.

    Use ``@click.group(cls=Group, expected=(MyError,))``; sub-groups created with
    ``@group.group()`` inherit the class and the expected errors.
    """

    def __init__(self, *args, expected: tuple[type[BaseException], ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expected = tuple(expected)

    def group(self, *args, **kwargs):
        kwargs.setdefault("cls", Group)
        kwargs.setdefault("expected", self.expected)
        return super().group(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except self.expected as exc:
            raise click.ClickException(one_line(exc)) from None


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (multi-line library messages stay readable)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def verbosity_options(fn):
    """``-v/--verbose`` (count) and ``-q/--quiet`` on a command line's main group."""
    fn = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")(fn)
    return click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")(fn)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
)
