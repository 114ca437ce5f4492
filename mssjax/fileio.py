"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer in mssjax (audio, result stores, reports, generated songs,
configs) goes through `atomic_path`: the data is written to a temporary file in
the target's folder, named ``.<name>.<random>.partial`` so that no glob for
results (``*.json``, ``*.wav``) ever matches it, and then moved over the target
with one ``os.replace``. A crash or kill leaves at most a ``.partial`` file
behind, never a truncated target.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import tempfile
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
