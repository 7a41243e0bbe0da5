"""Stop requests to a scan run by a command: Ctrl-C, and the signals a supervisor sends.

SIGINT (Ctrl-C at a terminal) stops a scan through asyncio's own handling: the scans in
flight are recorded as interrupted and stored, then the command exits 130. SIGTERM (what
``timeout``, a CI runner's cancel and systemd send) and SIGHUP (the terminal closed) are
stop requests too and take the same path, so a scan ended that way leaves the same record
and exits 128 + the signal's number (143, 129). They are heard even by a command started
with SIGINT ignored (a background job of a script), which must still be stoppable.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by ``signum``; the scans in flight are on the record."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopRequests:
    """The first stop signal heard while a scan runs, and the task it cancels."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def listen(self, task: asyncio.Task[object]) -> None:
        """From inside the running loop: SIGTERM and SIGHUP cancel ``task`` (the scan's main task)."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._heard, sig, task)

    def _heard(self, signum: int, task: asyncio.Task[object]) -> None:
        if self.signum is None:
            self.signum = signum
            task.cancel()


@contextmanager
def stop_requests() -> Iterator[StopRequests]:
    """Around ``asyncio.run``: a scan cancelled by a stop signal ends as :class:`Stopped`."""
    requests = StopRequests()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        yield requests
    except asyncio.CancelledError:
        if requests.signum is None:
            raise
        raise Stopped(requests.signum) from None
    finally:
        for sig, handler in previous.items():  # the loop's removal leaves SIG_DFL: put back what was there
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    if requests.signum is not None:
        raise Stopped(requests.signum)
