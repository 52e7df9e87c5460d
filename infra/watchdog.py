"""Leaving at once when going on could lose or wedge work: the last resort of a long-running process.

A process that cannot safely go on (a record it holds could be lost, a client call will not
return) exits with status 70 without committing anything more: its orchestrator starts it
again, and the new process resumes from the last commit, which is exactly-once safe for the
composer (transactions) and at-least-once safe for the stream worker (checkpoints).

:class:`CallWatchdog` guards client calls that take a timeout but may not honour it:
librdkafka's ``send_offsets_to_transaction`` can block for ever once the group coordinator
went away and came back (confluentinc/librdkafka#5456, #5511) — seen here when the broker is
SIGKILLed and restarted. A process stuck there would report healthy and make nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CallWatchdog", "exit_without_commit"]

log = logging.getLogger("crowdsound")


def exit_without_commit(exc: BaseException | None, what: str) -> None:
    """Exit the process at once (status 70), committing nothing more: the restarted process
    processes everything after the last commit again."""
    if exc is None:
        log.critical("%s; exiting without committing", what)
    else:
        log.critical("%s (%s: %s); exiting without committing", what, type(exc).__name__, exc, exc_info=exc)
    logging.shutdown()
    os._exit(70)


class CallWatchdog:
    """Exits the process (:func:`exit_without_commit`) when a guarded call outlives its deadline."""

    def __init__(self, *, check_every_s: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._call: tuple[str, float] | None = None  # (what, deadline on the monotonic clock)
        self._check_every_s = check_every_s
        threading.Thread(target=self._watch, name="call-watchdog", daemon=True).start()

    @contextmanager
    def deadline(self, what: str, seconds: float) -> Iterator[None]:
        """Guard the block: if it has not finished ``seconds`` from now, the process exits."""
        with self._lock:
            self._call = (what, time.monotonic() + seconds)
        try:
            yield
        finally:
            with self._lock:
                self._call = None

    def _watch(self) -> None:
        while True:
            time.sleep(self._check_every_s)
            with self._lock:
                call = self._call
            if call is not None and time.monotonic() > call[1]:
                exit_without_commit(None, f"{call[0]} did not return in time (a client call that ignores its timeout)")
