"""Shared fixtures: the real MUSDB18 previews beside the repository."""

import os
import pathlib

import pytest

# The command-line tools keep compiled programs in the user's cache; tests (and the tools they start)
# compile afresh unless a test asks for the cache (tests/test_separate.py).
os.environ["MSSJAX_COMPILATION_CACHE"] = "0"

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
MUSDB_ROOT = SHARED_DATA / "musdb18-7"
MIXTURE_EXAMPLE = SHARED_DATA / "mixtures" / "audio_example.mp3"


@pytest.fixture(scope="session")
def musdb_root():
  """Path of ``../shared/data/musdb18-7`` (skips where the data are absent)."""
  if not MUSDB_ROOT.is_dir():
    pytest.skip(f"real MUSDB18 previews not found at {MUSDB_ROOT}")
  return MUSDB_ROOT


@pytest.fixture(scope="session")
def mixture_example():
  """Path of ``../shared/data/mixtures/audio_example.mp3``."""
  if not MIXTURE_EXAMPLE.is_file():
    pytest.skip(f"example mixture not found at {MIXTURE_EXAMPLE}")
  return MIXTURE_EXAMPLE
