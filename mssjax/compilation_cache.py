"""JAX's persistent compilation cache for the command-line tools.

Every ``python -m mssjax`` process compiles its separator (seconds on a CPU);
with the cache on, a second process with the same separator and chunk shape
reads the compiled program from disk instead. The cache lives in the user's
cache folder (``$XDG_CACHE_HOME/mssjax/jax``, default ``~/.cache/mssjax/jax``),
or in ``$MSSJAX_COMPILATION_CACHE_DIR``; ``MSSJAX_COMPILATION_CACHE=0``
turns it off. The library itself never turns it on: only the entry points do.
"""

from __future__ import annotations

import os
import pathlib

import jax

OFF_VALUES = ("0", "off", "false", "no")
MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def cache_dir() -> pathlib.Path | None:
  """Where the cache goes, or None when ``MSSJAX_COMPILATION_CACHE`` turns it off."""
  if os.environ.get("MSSJAX_COMPILATION_CACHE", "1").strip().lower() in OFF_VALUES:
    return None
  explicit = os.environ.get("MSSJAX_COMPILATION_CACHE_DIR")
  if explicit:
    return pathlib.Path(explicit)
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "mssjax" / "jax"


def enable() -> pathlib.Path | None:
  """Turns JAX's persistent compilation cache on (unless off); returns its folder.

  Programs that took at least 0.2 s to compile are stored, whatever their size
  (``$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``, when set, is left to JAX).
  A folder that cannot be made leaves the cache off (compilation still works).
  """
  folder = cache_dir()
  if folder is None:
    return None
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", str(folder))
  if MIN_COMPILE_TIME_ENV not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return folder
