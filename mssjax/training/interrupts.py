"""SIGINT and SIGTERM during training: a `KeyboardInterrupt` that never lands inside a checkpoint's I/O.

orbax runs each save and restore on an asyncio loop of its own. An interrupt
raised inside one closes that loop while TensorStore still completes its reads
and writes, and each completion then prints a "RuntimeError: Event loop is
closed" traceback (dozens of them), and a save is left as an
``N.orbax-checkpoint-tmp`` folder. `Interrupts` turns both signals into a
`KeyboardInterrupt` at once, except inside `Interrupts.deferred` blocks (the
checkpoint calls), where the interrupt waits for the block's end. Once one
interrupt is raised the run is stopping: later signals are ignored, so that
the last save finishes (``kill -9`` still ends it at once, and orbax keeps
the last complete checkpoint).

SIGTERM (what clusters and ``kill`` send) is handled as SIGINT, so a preempted
run also keeps its last complete checkpoint and ends with one line.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that interrupt a training run."""


class Interrupts:
  """Installs handlers for `SIGNALS` (in the main thread) while it is entered as a context manager.

  Example::

    interrupts = Interrupts()
    with interrupts:
      ...                          # a signal raises KeyboardInterrupt here
      with interrupts.deferred():
        manager.save(...)          # ... and here only once the save returned
  """

  def __init__(self) -> None:
    self._previous: dict[int, object] = {}
    self._depth = 0
    self._pending: int | None = None
    self.received: int | None = None  # the signal that interrupted the run

  def __enter__(self) -> Interrupts:
    if threading.current_thread() is threading.main_thread():  # signal.signal works only there
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc_info) -> None:
    for number, handler in self._previous.items():
      signal.signal(number, handler)
    self._previous = {}

  def received_name(self) -> str:
    """`` (SIGTERM)`` where a signal other than SIGINT interrupted the run, else ``""`` (for messages)."""
    if self.received is None or self.received == signal.SIGINT:
      return ""
    return f" ({signal.Signals(self.received).name})"

  def _handle(self, number: int, frame: object) -> None:
    del frame
    if self.received is not None:
      return  # already stopping
    if self._depth:
      self._pending = number
    else:
      self.received = number
      raise KeyboardInterrupt

  @contextlib.contextmanager
  def deferred(self) -> Iterator[None]:
    """A block that a signal does not interrupt: it raises `KeyboardInterrupt` after the block instead."""
    self._depth += 1
    try:
      yield
    finally:
      self._depth -= 1
    if not self._depth and self._pending is not None and self.received is None:
      self.received, self._pending = self._pending, None
      raise KeyboardInterrupt
