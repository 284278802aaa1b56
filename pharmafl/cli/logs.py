"""What the command line prints while it works: pharmafl's lines, not its libraries' chatter.

By default the console shows pharmafl's own info lines (``pharmafl.*``, ``flows.*`` and what
pharmafl's flows log on their Prefect run loggers) and other libraries' warnings and errors;
not the HTTP requests of Prefect's client (``httpx``), nor Prefect's own lines about its runs
("Beginning flow run", "Finished in state Failed(...)", "Crash detected!"), nor a run's error
lines: a run's failure reaches the console once, through whoever awaited the run (the
command's one ``error:`` line, or the operator's "partner ... dropped" warning). Prefect's
API log handler still receives every line, so a shared Prefect server keeps the whole story.

``-v`` adds pharmafl's debug lines, the libraries' info lines (HTTP requests included),
Prefect's run logs and, for an error, its traceback; ``-vv`` every library's debug lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: pharmafl's own loggers (entry points included).
OWN_LOGGERS = ("pharmafl", "flows")
#: Prefect's per-run loggers: pharmafl's flows log their progress there too.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
#: Libraries whose debug lines are connection-level trace, shown only with ``-vv``.
_TRACE_LOGGERS = ("httpcore", "websockets", "graphviz", "asyncio", "aiosqlite", "urllib3")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _emitted_by_prefect(record: logging.LogRecord) -> bool:
    """Whether Prefect's own code (its flow and task engines) made this record."""
    prefect = sys.modules.get("prefect")
    if prefect is None or prefect.__file__ is None:
        return False
    return Path(record.pathname).is_relative_to(Path(prefect.__file__).parent)


class QuietConsole(logging.Filter):
    """The default console filter (see the module docstring). Attached to the handler, so it
    holds whatever levels Prefect gives its loggers when it configures logging on import."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _under(record.name, OWN_LOGGERS):
            return True
        if _under(record.name, RUN_LOGGERS):
            return record.levelno < logging.ERROR and not _emitted_by_prefect(record)
        return record.levelno >= logging.WARNING


def configure_logging(verbosity: int = 0) -> None:
    """Send log lines to stderr, filtered by ``verbosity`` (0 default, 1 ``-v``, 2 ``-vv``).

    Replaces any handler already on the root logger (``force``). The handler stays a plain
    :class:`logging.StreamHandler`: Prefect, configuring logging when it is imported later,
    leaves a root logger with a user's handler alone (a handler class named ``_...`` would
    not count as one, and Prefect would add its own console handler: every line twice).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbosity >= 2 else logging.INFO,
        format=_FORMAT,
        stream=sys.stderr,
        force=True,
    )
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
    quiet = verbosity == 0
    # Not even created by default: each Prefect call makes one of these per HTTP request.
    logging.getLogger("httpx").setLevel(logging.WARNING if quiet else logging.INFO)
    for name in _TRACE_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    if quiet:
        for handler in logging.getLogger().handlers:
            handler.addFilter(QuietConsole())


class _StepsOnly(logging.Filter):
    """Drops pharmafl's and its runs' lines below WARNING (see :func:`steps_only`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = _under(record.name, OWN_LOGGERS) or _under(record.name, RUN_LOGGERS)
        return not ours or record.levelno >= logging.WARNING


@contextmanager
def steps_only() -> Iterator[None]:
    """Without ``-v``: only warnings and errors from pharmafl's loggers and its run loggers
    reach the console while the block runs (a command that prints its own step lines, such as
    ``demo``, whose steps would otherwise add a line per epoch and round). A filter on the
    console handlers, so it holds whatever levels Prefect sets on its run loggers."""
    if verbose():
        yield
        return
    handlers = list(logging.getLogger().handlers)
    only = _StepsOnly()
    for handler in handlers:
        handler.addFilter(only)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(only)


def verbose() -> bool:
    """Whether ``-v`` (or more) was given: errors then come with their traceback."""
    return logging.getLogger(OWN_LOGGERS[0]).isEnabledFor(logging.DEBUG)


__all__ = [
    "OWN_LOGGERS",
    "RUN_LOGGERS",
    "QuietConsole",
    "configure_logging",
    "steps_only",
    "verbose",
]
