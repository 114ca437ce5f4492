"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer in mssjax (audio, result stores, reports, generated songs,
configs) goes through `atomic_path`: the data is written to a temporary file in
the target's folder, named ``.<name>.<random>.partial`` so that no glob for
results (``*.json``, ``*.wav``) ever matches it, and then moved over the target
with one ``os.replace``. A crash or kill leaves at most a ``.partial`` file
behind, never a truncated target.

Sets of files are written in one of two ways:

- `atomic_paths` (a module and its JSON): each file is written to its own
  temporary file; the targets are checked (none may be a folder) before the
  first is replaced, and if a replacement still fails, the targets already
  replaced are restored (from hard links of the old files), so a failure
  leaves every target as it was.
- `atomic_folder` (a song's stems): the files are written into a temporary
  sibling folder ``.<name>.partial-<pid>-<random>``, which then takes the
  folder's place in one step (`replace_folder`: an atomic exchange of the two
  folders, Linux's ``renameat2(RENAME_EXCHANGE)``), so readers see the whole
  old set or the whole new set, from one writer. A killed writer's temporary
  folder is removed by the next writer in the same parent folder
  (`remove_stale_folders`) once its process is gone.

`check_writable` says, before any work, why a path cannot be written (a folder
where a file goes, a path below a file, a read-only folder), naming it.
`FileLock` is the advisory lock that keeps two runs out of one workdir, and
`move_aside` renames what a run must no longer read (an unreadable checkpoint).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import pathlib
import re
import shutil
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
  with _temporary_beside(path) as temporary:
    yield temporary
    os.chmod(temporary, 0o666 & ~_umask())
    os.replace(temporary, path)


@contextlib.contextmanager
def atomic_paths(paths: Iterable[str | os.PathLike]) -> Iterator[list[pathlib.Path]]:
  """`atomic_path` for several files written as a set: all are replaced only if the body succeeds.

  If the body raises, every temporary file is removed and no target changes.
  Before the first target is replaced every target is checked not to be a
  folder; if a replacement fails all the same, the targets replaced before it
  get their old contents back (or are removed where they did not exist).

  Raises:
    IsADirectoryError: a target is a folder (nothing is replaced).
  """
  paths = [pathlib.Path(path) for path in paths]
  with contextlib.ExitStack() as stack:
    temporaries = [stack.enter_context(_temporary_beside(path)) for path in paths]
    yield temporaries
    for path in paths:
      if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    _replace_all(temporaries, paths)


@contextlib.contextmanager
def _temporary_beside(path: pathlib.Path) -> Iterator[pathlib.Path]:
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
  os.close(handle)
  temporary = pathlib.Path(temporary)
  try:
    yield temporary
  finally:
    temporary.unlink(missing_ok=True)  # gone after its os.replace; removed after a failure


def _replace_all(temporaries: list[pathlib.Path], paths: list[pathlib.Path]) -> None:
  """``os.replace`` each temporary onto its path; on a failure, the paths already replaced are restored."""
  backups, done = {}, []
  try:
    for temporary, path in zip(temporaries, paths):
      os.chmod(temporary, 0o666 & ~_umask())
      if path.exists():
        backup = temporary.with_name(temporary.name.removesuffix(PARTIAL_SUFFIX) + ".old" + PARTIAL_SUFFIX)
        with contextlib.suppress(OSError):  # a filesystem without hard links: no way back for this one
          os.link(path, backup)
          backups[path] = backup
      os.replace(temporary, path)
      done.append(path)
  except BaseException:
    for path in done:
      if path in backups:
        os.replace(backups.pop(path), path)
      else:
        path.unlink(missing_ok=True)
    raise
  finally:
    for backup in backups.values():
      backup.unlink(missing_ok=True)


# --- sets of files in one folder ------------------------------------------------------------------

_PARTIAL_FOLDER = re.compile(r"^\..+\.partial-(\d+)-[A-Za-z0-9_]+$")


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields an empty temporary folder beside ``folder``; on success it takes ``folder``'s place at once.

  The temporary folder is ``.<name>.partial-<pid>-<random>`` in ``folder``'s
  parent (created where missing). When the body returns, the temporary folder
  replaces ``folder`` (`replace_folder`); if the body raises (or is
  interrupted), the temporary folder is removed and ``folder`` is left as it
  was (or absent). ``folder`` itself is never created empty.

  Example::

    with atomic_folder("separated/song") as temporary:
      for target, stem in stems.items():
        audio.save(temporary / f"{target}.wav", stem)
  """
  folder = pathlib.Path(folder)
  folder.parent.mkdir(parents=True, exist_ok=True)
  temporary = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-{os.getpid()}-"))
  try:
    yield temporary
    os.chmod(temporary, 0o777 & ~_umask())
    replace_folder(temporary, folder)
  finally:
    shutil.rmtree(temporary, ignore_errors=True)


def replace_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
  """Moves folder ``source`` onto ``target``, replacing a ``target`` folder that exists, then removes the old one.

  Where the system has ``renameat2`` (Linux) the two folders are exchanged in
  one step, so ``target`` is the complete old folder until it is the complete
  new one. Elsewhere the old folder is first renamed aside, so ``target`` is
  briefly absent (never partly written). Two writers at once: each move is
  whole, and the last one's folder stays.

  Raises:
    NotADirectoryError: ``target`` is a file.
  """
  source, target = pathlib.Path(source), pathlib.Path(target)
  aside = source.with_name(source.name + ".old")
  while True:
    try:
      os.rename(source, target)  # target absent (or an empty folder)
      return
    except OSError as error:
      if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
        raise
    try:
      if _exchange(source, target):
        shutil.rmtree(source, ignore_errors=True)  # now the old folder
        return
      os.rename(target, aside)
    except FileNotFoundError:
      continue  # another writer moved target away in between: try again
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
  """Swaps two paths atomically with ``renameat2(RENAME_EXCHANGE)``; False where the system cannot."""
  renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
  if renameat2 is None:
    return False
  at_fdcwd, rename_exchange = -100, 2
  if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
    return True
  code = ctypes.get_errno()
  if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel, or a filesystem that cannot
    return False
  raise OSError(code, os.strerror(code), str(b))


def remove_stale_folders(parent: str | os.PathLike) -> list[pathlib.Path]:
  """Removes the temporary folders of `atomic_folder` in ``parent`` whose writing process is gone.

  A folder ``.<name>.partial-<pid>-<random>`` (or its ``.old`` twin) is stale
  when no process ``pid`` runs (a killed writer); the folders of running
  writers are kept.

  Returns:
    the folders removed.
  """
  removed = []
  for entry in _entries(parent):
    found = _PARTIAL_FOLDER.match(entry.name.removesuffix(".old"))
    if found and entry.is_dir() and not entry.is_symlink() and not _running(int(found.group(1))):
      shutil.rmtree(entry, ignore_errors=True)
      removed.append(entry)
  return removed


def _entries(parent: str | os.PathLike) -> list[pathlib.Path]:
  try:
    return list(pathlib.Path(parent).iterdir())
  except OSError:
    return []


def _running(pid: int) -> bool:
  if pid == os.getpid():
    return True
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # another user's process
  except OverflowError:
    return False
  return True


def printable(path: str | os.PathLike) -> str:
  """``path`` as text that any stream can print: bytes that are not UTF-8 are shown as ``\\xff``.

  A file name with such bytes (``bad\\xff.wav``) comes to Python as a
  surrogate escape, which a UTF-8 stream refuses to encode.
  """
  return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> pathlib.Path:
  """Returns ``path``; raises an `OSError` naming it where it cannot be written as a file (or a folder).

  Checks what exists: no part of the path above it may be a file, the path
  itself may not be a folder (or, for ``folder=True``, a file), and the
  nearest existing folder must be writable: ``os.access``, then a temporary
  file made there and removed at once (an unnamed ``O_TMPFILE`` where Linux
  has it), since ``os.access`` lets root through where no file can be made
  (a read-only mount, ``/proc``). Nothing is left behind.

  Raises:
    NotADirectoryError: a file where a folder goes (above ``path``, or ``path`` itself for ``folder=True``).
    IsADirectoryError: ``path`` is a folder and a file goes there.
    PermissionError: the nearest existing folder is not writable, or takes no new file.
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
  if existing is None or not existing.is_dir():
    return path
  if not os.access(existing, os.W_OK | os.X_OK):
    raise PermissionError(f"{path}: cannot be written: {existing} is read-only")
  try:  # os.access lets root through where no file can be made (a read-only mount, /proc)
    with tempfile.TemporaryFile(dir=existing, prefix=".write-check."):
      pass
  except OSError as e:
    raise PermissionError(f"{path}: cannot be written: {existing} takes no new file ({e.strerror or e})") from e
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
