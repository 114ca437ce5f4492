"""The errors mssjax raises, and the checks that raise them.

Every error names what was wrong in librosa's form, for example
``ParameterError("hop_length=0 must be a positive integer")``, and, for files,
the path: ``AudioError("song.wav: file is empty")``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

import numpy as np


class ParameterError(ValueError):
  """A parameter or an input array is not valid (raised before any jit)."""


class AudioError(ValueError):
  """An audio file cannot be read or written, or holds unusable audio."""


class DataError(ValueError):
  """A dataset (folder of tracks) is missing, malformed or inconsistent."""


def check_positive_int(name: str, value: Any) -> int:
  """Returns ``value`` as an int; raises `ParameterError` unless it is a positive integer."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ParameterError(f"{name}={value!r} must be a positive integer")
  return int(value)


def check_non_negative_int(name: str, value: Any) -> int:
  """Returns ``value`` as an int; raises `ParameterError` unless it is an integer >= 0."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ParameterError(f"{name}={value!r} must be a non-negative integer")
  return int(value)


def check_finite(name: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
  """Returns ``value`` as a float; raises `ParameterError` unless it is a finite number in range.

  Args:
    name: the setting's name, for the message.
    value: the value to check.
    minimum: the lowest allowed value (None: any).
    strict: True if ``value`` must be strictly greater than ``minimum``.
  """
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
      not math.isfinite(value):
    raise ParameterError(f"{name}={value!r} must be a finite number")
  if minimum is not None and (value <= minimum if strict else value < minimum):
    raise ParameterError(f"{name}={value!r} must be {'>' if strict else '>='} {minimum}")
  return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
  """Returns ``value``; raises `ParameterError` listing the valid ``choices`` unless it is one of them."""
  choices = list(choices)
  if value not in choices:
    raise ParameterError(f"{name}={value!r} is not known; valid choices: {choices}")
  return value


def check_targets(targets: Any, *, what: str = "targets") -> tuple[str, ...]:
  """``targets`` as a tuple of distinct target names, each usable as a file name.

  Raises:
    ParameterError: not a non-empty sequence of distinct names, or a name that
      is empty, starts with a dot, or holds a path separator or a control character.
  """
  if isinstance(targets, str) or not isinstance(targets, Iterable):
    raise ParameterError(f"{what}={targets!r} must be a sequence of target names")
  names = tuple(targets)
  if not names:
    raise ParameterError(f"{what}=() must name at least one target")
  for name in names:
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\,") or \
        any(ord(c) < 32 for c in name):
      raise ParameterError(f"{what}: {name!r} is not a usable target name (a file name without a path "
                           "separator, comma, leading dot or control character)")
  if len(set(names)) != len(names):
    raise ParameterError(f"{what}={names!r} names a target twice")
  return names


class CheckpointError(ValueError):
  """A checkpoint, workdir or weights file is missing, corrupt or does not fit the model."""


class CheckpointMismatchError(CheckpointError):
  """A readable checkpoint whose arrays do not fit the model or state they are read into (every checkpoint
  of the workdir will say the same: no other checkpoint is tried)."""


USER_ERRORS = (AudioError, CheckpointError, DataError, ParameterError)
"""The errors a command line reports as one ``error: ...`` line (a traceback only with ``--debug``)."""


def available_memory() -> int | None:
  """Bytes of memory this machine can still give (``MemAvailable`` of /proc/meminfo, else the free pages), or
  None where neither is known."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
  except (ValueError, OSError, AttributeError):
    return None


def check_memory(what: str, n_bytes: float) -> None:
  """Raises `ParameterError` naming the setting ``what`` (e.g. ``"shifts=1000"``) if ``n_bytes`` (an estimate
  from shapes, made before any work) exceed the memory available now; nothing where that is unknown."""
  available = available_memory()
  if available is not None and n_bytes > available:
    raise ParameterError(f"{what} needs about {n_bytes / 2**30:,.1f} GiB of memory; "
                         f"{available / 2**30:,.1f} GiB are available")
