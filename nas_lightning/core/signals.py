"""SIGTERM and Ctrl-C stop a search cleanly, never in the middle of a write.

A cluster preempts a job with SIGTERM (then SIGKILL after a grace period); a
user presses Ctrl-C. Either raises :class:`SearchInterrupted` in the main
thread: the child in training is abandoned (it is trained again on resume),
the summary says ``interrupted`` and the process exits ``128 + signal``
(143 for SIGTERM, 130 for Ctrl-C), which schedulers read as "requeue me".

A signal that arrives inside :func:`critical` (a run-folder write) is held
until the write ends. A second signal while the first is being handled ends
the process at once: every file of the run folder is crash-safe, so that is
no worse than a ``kill -9``.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# A per-process token in new run folder names (conf/search.yaml's run_token): searches
# started in the same second get different folders.
PROCESS_TOKEN = secrets.token_hex(3)

HANDLED = (signal.SIGTERM, signal.SIGINT)


class SearchInterrupted(BaseException):  # noqa: N818 - not an error: a request to stop
    """A signal asked the search to stop; the run folder is resumable.

    A ``BaseException`` so that the ``except Exception`` that records a
    crashing child does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + signal number."""
        return 128 + self.signum


class _State:
    depth = 0  # nesting of critical sections
    pending: int | None = None  # a signal held until the critical section ends
    raised = False  # SearchInterrupted already raised: the search is stopping
    signum: int | None = None  # the first signal received


_state = _State()


def _handler(signum: int, frame: object) -> None:
    if _state.signum is None:
        _state.signum = signum
    if _state.raised:
        os._exit(128 + signum)  # asked twice: stop now (the folder is crash-safe)
    if _state.depth:
        _state.pending = signum
        return
    _state.raised = True
    raise SearchInterrupted(signum)


def received() -> int | None:
    """The signal that asked the search to stop, if any."""
    return _state.signum


@contextmanager
def critical() -> Iterator[None]:
    """Hold SIGTERM/SIGINT until the enclosed write has finished."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
    if _state.depth == 0 and _state.pending is not None and not _state.raised:
        _state.raised = True
        raise SearchInterrupted(_state.pending)


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`SearchInterrupted` while inside.

    Lightning installs its own SIGTERM handler during ``fit`` and calls the
    one found here after its own, so the signal still reaches us; its own
    reaction (a ``SystemExit`` with status 0) is turned into the interruption
    it stands for.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    _state.depth, _state.pending, _state.raised = 0, None, False
    for s in HANDLED:
        signal.signal(s, _handler)
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as err:
        if _state.signum is None:
            raise
        raise SearchInterrupted(_state.signum) from err
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.depth, _state.pending, _state.raised, _state.signum = 0, None, False, None
