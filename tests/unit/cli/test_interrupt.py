"""SIGTERM stops a command as Ctrl-C does (a service manager's stop, ``kill``)."""

from __future__ import annotations

import os
import signal

import pytest

from pharmafl.cli import interrupt


def test_sigterm_and_sigint_raise_keyboard_interrupt_once_then_stop_at_once() -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupt.install()
        for sig in (signal.SIGTERM, signal.SIGINT):
            assert signal.getsignal(sig) is interrupt._stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        # during the clean-up, a second signal of either kind stops at once
        for sig in (signal.SIGTERM, signal.SIGINT):
            assert signal.getsignal(sig) is interrupt._stop_at_once
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
