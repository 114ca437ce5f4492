"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer in mssjax (audio, result stores, reports, generated songs,
configs) goes through `atomic_path`: the data is written to a temporary file in
the target's folder, named ``.<name>.<random>.partial`` so that no glob for
results (``*.json``, ``*.wav``) ever matches it, and then moved over the target
with one ``os.replace``. A crash or kill leaves at most a ``.partial`` file
behind, never a truncated target.

`check_writable` says, before any work, why a path cannot be written (a folder
where a file goes, a path below a file, a read-only folder), naming it.
`FileLock` is the advisory lock that keeps two runs out of one workdir, and
`move_aside` renames what a run must no longer read (an unreadable checkpoint).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import re
import socket
import tempfile
import time
from typing import Any, Iterable, Iterator

PARTIAL_SUFFIX = ".partial"


def _umask() -> int:
  """The process's umask (temporary files are created 0600; finished ones follow the umask)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary path beside ``path``; on success it replaces ``path`` atomically.

  Missing parent folders are created. If the body raises, the temporary file
  is removed and ``path`` is left as it was.

  Example::

    with atomic_path("out/scores.json") as tmp:
      tmp.write_text(text)
  """
  path = pathlib.Path(path)
  check_writable(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
  os.close(handle)
  temporary = pathlib.Path(temporary)
  try:
    yield temporary
    os.chmod(temporary, 0o666 & ~_umask())
    os.replace(temporary, path)
  except BaseException:
    temporary.unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def atomic_paths(paths: Iterable[str | os.PathLike]) -> Iterator[list[pathlib.Path]]:
  """`atomic_path` for several files written as a set: all are replaced only if the body succeeds.

  If the body raises, every temporary file is removed and no target changes.
  """
  with contextlib.ExitStack() as stack:
    yield [stack.enter_context(atomic_path(path)) for path in paths]


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> pathlib.Path:
  """Returns ``path``; raises an `OSError` naming it where it cannot be written as a file (or a folder).

  Checks what exists: no part of the path above it may be a file, the path
  itself may not be a folder (or, for ``folder=True``, a file), and the
  nearest existing folder must be writable (``os.access``: root may write
  anywhere). Nothing is created.

  Raises:
    NotADirectoryError: a file where a folder goes (above ``path``, or ``path`` itself for ``folder=True``).
    IsADirectoryError: ``path`` is a folder and a file goes there.
    PermissionError: the nearest existing folder is not writable.
  """
  path = pathlib.Path(path)
  for parent in reversed(path.parents):
    if parent.exists() and not parent.is_dir():
      raise NotADirectoryError(f"{path}: cannot be written: {parent} is a file, not a folder")
  if folder and path.exists() and not path.is_dir():
    raise NotADirectoryError(f"{path}: is a file, not a folder")
  if not folder and path.is_dir():
    raise IsADirectoryError(f"{path}: is a folder; a file goes there")
  start = path if folder else path.parent
  existing = next((p for p in (start, *start.parents) if p.exists()), None)
  if existing is not None and existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
    raise PermissionError(f"{path}: cannot be written: {existing} is read-only")
  return path


def safe_name(name: str, *, default: str = "untitled") -> str:
  """``name`` as one file or folder name that stays inside its parent folder.

  Path separators and control characters become ``_``; leading and trailing
  dots and spaces are removed (so ``".."`` or ``"..."`` cannot name a parent);
  an empty result is ``default``.
  """
  name = re.sub(r"[\x00-\x1f/\\]", "_", str(name)).strip(". ")
  return name or default


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
  """Writes ``text`` (UTF-8) to ``path`` atomically; returns the path."""
  with atomic_path(path) as temporary:
    temporary.write_text(text, encoding="utf-8")
  return pathlib.Path(path)


def write_json(path: str | os.PathLike, document: Any, *, indent: int | None = 2) -> pathlib.Path:
  """Writes ``document`` as JSON to ``path`` atomically; NaN is written as ``NaN`` (as museval)."""
  return write_text(path, json.dumps(document, indent=indent, allow_nan=True))


class FileLock:
  """An advisory lock (``flock``) on one file, held by this process until `release` or its death.

  The operating system releases the lock when the process ends in any way,
  ``kill -9`` included, so a lock is never stale. The file itself stays (it
  holds the last holder's ``pid PID on HOST``; only the lock counts). On NFS,
  Linux emulates ``flock`` with byte-range locks, which every client sees.
  """

  def __init__(self, path: str | os.PathLike):
    self.path = pathlib.Path(path)
    self._descriptor: int | None = None

  def acquire(self) -> str | None:
    """Takes the lock (creating the file and its folders); returns None, or, where another process holds
    it, what that process wrote (``pid PID on HOST``, or ``"an unknown process"``)."""
    self.path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
      os.close(descriptor)
      return holder or "an unknown process"
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    self._descriptor = descriptor
    return None

  def release(self) -> None:
    """Releases the lock if this object holds it."""
    if self._descriptor is not None:
      os.close(self._descriptor)  # closing the descriptor releases the flock
      self._descriptor = None


def move_aside(path: str | os.PathLike, tag: str) -> pathlib.Path:
  """Renames ``path`` to ``<path>.<tag>-<seconds since the epoch>`` in its folder and returns the new path
  (kept for inspection; a name that no reader of the folder takes for a result)."""
  path = pathlib.Path(path)
  target = path.with_name(f"{path.name}.{tag}-{int(time.time())}")
  os.rename(path, target)
  return target
