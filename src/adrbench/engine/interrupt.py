"""Interruption, both ways: the runner stopping on a signal, and a worker dying with its runner.

``adrbench run`` is stopped by Ctrl-C (SIGINT), by ``timeout`` / CI cancellation / container
stops (SIGTERM) and by a closed terminal (SIGHUP). :func:`interruptible` treats all three alike:
the first raises :class:`Interrupted` (a ``KeyboardInterrupt``) in the main thread, so the runner
kills the running worker's process group, records it and the scenarios not yet run as
``canceled``, removes its temporary directory and the command writes what finished, marked as
an interrupted run (never evidence unless asked for). A
second signal does not wait for that: it kills the registered worker groups and exits at once
with ``128 + signal number``.

A worker is started in its own session (so a timeout can kill its whole group), so nothing
delivers the runner's signals to it. :func:`die_with_parent` makes the kernel kill it when its
parent dies, even by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``), and adds a thread that watches
the parent's pid as a fallback (other systems, and a parent that died before the ``prctl``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "HANDLED_SIGNALS",
    "PARENT_PID_ENV",
    "Interrupted",
    "Signals",
    "die_with_parent",
    "exit_status",
    "interruptible",
    "register_group",
    "unregister_group",
]

HANDLED_SIGNALS = tuple(
    s
    for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
    if s is not None
)
PARENT_PID_ENV = "ADRBENCH_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_WATCH_INTERVAL_S = 1.0

# Process groups of running workers, so a second signal can kill them before exiting.
_groups: set[int] = set()


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal (SIGINT, SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def exit_status(signum: int) -> int:
    """What a shell reports for a process stopped by ``signum``: 130 SIGINT, 143 SIGTERM, 129
    SIGHUP."""
    return 128 + signum


def register_group(pgid: int) -> None:
    _groups.add(pgid)


def unregister_group(pgid: int) -> None:
    _groups.discard(pgid)


def _kill_groups() -> None:
    for pgid in list(_groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class Signals:
    """What :func:`interruptible` has received. Set ``defer`` once the work is done and only
    writing is left: a first signal is then recorded, not raised, so the writing completes."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.defer = False

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None


@contextlib.contextmanager
def interruptible() -> Iterator[Signals]:
    """Within the block, SIGINT / SIGTERM / SIGHUP raise :class:`Interrupted` once; a second one
    kills the registered worker groups and exits at once.

    Only the main thread can install handlers; elsewhere the block changes nothing.
    """
    state = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        state.received.append(signum)
        if len(state.received) > 1:
            _kill_groups()
            sys.stderr.write(f"\n{signal.Signals(signum).name} again: exiting now\n")
            sys.stderr.flush()
            os._exit(exit_status(signum))
        if not state.defer:
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in HANDLED_SIGNALS}
    try:
        yield state
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _end_own_group() -> None:
    # The worker leads its own session; its group is itself and anything it started.
    with contextlib.suppress(OSError):
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(1)


def _watch(parent: int) -> None:
    while True:
        time.sleep(_WATCH_INTERVAL_S)
        if os.getppid() != parent:
            _end_own_group()


def die_with_parent() -> None:
    """Make this process end when its parent does (see the module docstring).

    The parent's pid comes from ``$ADRBENCH_PARENT_PID`` (set by the runner); without it only the
    kernel's parent-death signal is set.
    """
    _set_parent_death_signal()
    expected = os.environ.get(PARENT_PID_ENV)
    if expected is None or not expected.isdigit():
        return
    parent = int(expected)
    if os.getppid() != parent:  # it died before the prctl took effect
        _end_own_group()
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
