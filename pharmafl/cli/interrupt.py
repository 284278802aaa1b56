"""Ctrl-C or SIGTERM: a command stops within seconds, says so in one line, exits with 130.

The first SIGINT raises :class:`KeyboardInterrupt` in the main thread, as Python does, and
the command unwinds: temporary folders removed (:func:`pharmafl.common.io.atomic_directory`),
worker processes stopped (:mod:`pharmafl.chem.pool`), partner rounds in threads interrupted
too (``flows/launchers.py``), Prefect recording the run as crashed on its local API server
(``flows/_api.py`` keeps that server out of the terminal's Ctrl-C), then stopping it. A second
SIGINT during that clean-up stops the command at once (its child processes terminated; a
temporary file may remain). A command says what it left untouched with :func:`interruptible`;
:func:`pharmafl.cli.main.main` prints the line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

import psutil

#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class CommandInterrupted(KeyboardInterrupt):
    """Ctrl-C during a command, with what the user should know about its outputs."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


def _stop(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    signal.signal(signal.SIGINT, _stop_at_once)
    signal.signal(signal.SIGTERM, _stop_at_once)
    raise KeyboardInterrupt


def _stop_at_once(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.terminate()
    sys.stderr.write("interrupted again: stopped at once (a temporary file may remain)\n")
    os._exit(EXIT_INTERRUPTED)


def install() -> None:
    """Handle SIGINT and SIGTERM (a service manager's stop) in this (main) thread: the first
    one stops the command cleanly, a second one during that clean-up at once."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


@contextlib.contextmanager
def interruptible(note: str | Callable[[], str]) -> Iterator[None]:
    """Ctrl-C inside the block ends the command with ``interrupted: <note>`` (``note`` may be
    a function, called then: what was written may depend on when the Ctrl-C came)."""
    try:
        yield
    except CommandInterrupted:
        raise
    except KeyboardInterrupt as exc:
        raise CommandInterrupted(note() if callable(note) else note) from exc


def interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The :class:`KeyboardInterrupt` behind ``exc`` (typer turns one into ``Exit(130)``),
    following the chain of causes; ``None`` when ``exc`` did not come from a Ctrl-C."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def message(stop: KeyboardInterrupt) -> str:
    """The one line a Ctrl-C leaves."""
    if isinstance(stop, CommandInterrupted):
        return f"interrupted: {stop.note}"
    return "interrupted"


__all__ = [
    "EXIT_INTERRUPTED",
    "CommandInterrupted",
    "install",
    "interruptible",
    "interruption",
    "message",
]
