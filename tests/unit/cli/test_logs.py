"""What reaches the console by default: pharmafl's lines, other libraries' warnings only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pharmafl.cli.interrupt import CommandInterrupted, interruptible, interruption, message
from pharmafl.cli.logs import QuietConsole, configure_logging, verbose


def _record(name: str, level: int, pathname: str = __file__) -> logging.LogRecord:
    return logging.LogRecord(name, level, pathname, 1, "message", None, None)


def _prefect_file(name: str) -> str:
    import prefect

    return str(Path(prefect.__file__).parent / name)


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        (_record("pharmafl.partner.prepare", logging.INFO), True),
        (_record("flows.train", logging.DEBUG), True),
        (_record("httpx", logging.INFO), False),  # "HTTP Request: ..."
        (_record("httpx", logging.WARNING), True),
        (_record("prefect", logging.INFO), False),  # "Starting temporary server ..."
        (_record("torch", logging.WARNING), True),
        (_record("prefect.flow_runs", logging.INFO), True),  # a flow's own progress line
        (_record("prefect.flow_runs", logging.ERROR), False),  # "prepare failed: ..." (CLI says it)
    ],
)
def test_quiet_console_keeps_pharmafl_lines_and_other_warnings(
    record: logging.LogRecord, shown: bool
) -> None:
    assert QuietConsole().filter(record) is shown


@pytest.mark.parametrize("level", [logging.INFO, logging.ERROR])
def test_quiet_console_hides_prefects_own_run_lines(level: int) -> None:
    """ "Beginning flow run", "Finished in state Failed(...)", "Crash detected!"."""
    record = _record("prefect.flow_runs", level, _prefect_file("flow_engine.py"))
    assert not QuietConsole().filter(record)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("pharmafl", "flows", "httpx", "httpcore")
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lvl in levels.items():
        logging.getLogger(n).setLevel(lvl)


@pytest.mark.parametrize("verbosity", [0, 1, 2])
def test_configure_logging_levels(restore_logging: None, verbosity: int) -> None:
    configure_logging(verbosity)
    root = logging.getLogger()
    filtered = any(isinstance(f, QuietConsole) for h in root.handlers for f in h.filters)
    assert filtered is (verbosity == 0)
    assert verbose() is (verbosity >= 1)
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO) is (verbosity >= 1)
    assert logging.getLogger("httpcore").isEnabledFor(logging.DEBUG) is (verbosity >= 2)
    # A plain StreamHandler: Prefect, imported later, then adds no console handler of its own.
    assert all(type(h) is logging.StreamHandler for h in root.handlers)


def test_interruptible_names_what_was_left_and_is_found_behind_typer_exit() -> None:
    import typer

    with pytest.raises(typer.Exit) as caught:
        try:
            with interruptible(lambda: "nothing written to X"):
                raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what typer does with it
            raise typer.Exit(130) from exc
    stop = interruption(caught.value)
    assert isinstance(stop, CommandInterrupted)
    assert message(stop) == "interrupted: nothing written to X"
    assert message(KeyboardInterrupt()) == "interrupted"
    assert interruption(typer.Exit(0)) is None


def test_an_error_is_printed_whole_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Config tables quoted in a message ("[melloddy]") are text, not console markup."""
    from pharmafl.cli.main import _report_error
    from pharmafl.common.errors import ConfigError

    _report_error(ConfigError("the [melloddy] table needs t0.", fix="add t0 = FILE."))
    assert capsys.readouterr().err == "error: the [melloddy] table needs t0. Fix: add t0 = FILE.\n"


@pytest.mark.parametrize("verbosity", [0, 1])
def test_steps_only_hides_pharmafls_info_lines_for_the_block(
    restore_logging: None, verbosity: int
) -> None:
    from pharmafl.cli.logs import steps_only

    configure_logging(verbosity)
    (handler,) = logging.getLogger().handlers

    def shown(name: str, level: int) -> bool:
        return all(f.filter(_record(name, level)) for f in handler.filters)

    names = ("pharmafl.partner.federated", "flows.train", "prefect.task_runs")
    with steps_only():
        for n in names:
            assert shown(n, logging.INFO) is (verbosity >= 1)
            assert shown(n, logging.WARNING)
        assert shown("torch", logging.WARNING)
    assert all(shown(n, logging.INFO) for n in names)  # the filter is gone afterwards
