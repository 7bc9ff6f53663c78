"""SIGTERM and SIGUSR1, which a cluster sends before it ends or preempts a job (Slurm: `--signal=USR1@120`, then
SIGTERM at the time limit or on preemption): caught, so that a command stops where its work can be resumed and
exits with `exit_codes.PREEMPTED` (75).

Training remembers the signal and acts on it at the next step boundary (`StopSignals()`, then `.received`);
`prepare` stops at once (`StopSignals(raise_now=True)` raises `StopRequested`), its finished units kept.
Handlers can only be set from the main thread; elsewhere the block runs with the signals as they were.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from s2ikit.utils.exit_codes import PREEMPTED

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequested(SystemExit):
    """A stop signal, raised where the program was: exits with PREEMPTED unless caught."""

    def __init__(self, name: str):
        super().__init__(PREEMPTED)
        self.signal = name


class StopSignals:
    """For a block: the first stop signal's name in `received`; with `raise_now`, StopRequested raised too (once:
    a second signal while the first unwinds is only remembered)."""

    def __init__(self, raise_now: bool = False):
        self.raise_now = raise_now
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.received is None
        if first:
            self.received = signal.Signals(signum).name
        if self.raise_now and first:
            raise StopRequested(self.received)
