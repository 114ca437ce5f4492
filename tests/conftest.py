"""Shared fixtures: the real MUSDB18 previews beside the repository."""

import os
import pathlib
import shutil
import tempfile

import pytest

from mssjax import compilation_cache

# One persistent compilation cache for the whole run (every xdist worker and every process the tests
# start: the same separators and training steps are compiled in many of them), in a fresh folder per
# run, never the user's (~/.cache/mssjax); removed at the end. Tests of the cache itself set their own.
if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller (or a run without workers); workers inherit it
  os.environ["MSSJAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mssjax-tests-")
os.environ["MSSJAX_COMPILATION_CACHE"] = "1"
COMPILATION_CACHE = pathlib.Path(os.environ["MSSJAX_COMPILATION_CACHE_DIR"])
compilation_cache.enable()

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


def pytest_sessionfinish(session):
  if not hasattr(session.config, "workerinput"):  # the controller (or a run without workers)
    shutil.rmtree(COMPILATION_CACHE, ignore_errors=True)


# The files that take longest (summed --durations=0 of one idle 2-core run, 2026-12-07: 241, 191, 189, 151,
# 107 s for the first five, 1,742 s in all), started first so that the xdist workers
# finish together (`make test` keeps this order: --no-loadscope-reorder); the others follow in name order.
LONGEST_FIRST = ("test_metrics.py", "test_multihost.py", "test_losses.py", "test_model_bs_roformer.py",
                 "test_evaluate.py", "test_train.py", "test_reliability.py", "test_separate.py",
                 "test_custom_stems.py", "test_model_umx.py", "test_models.py", "test_train_scale.py",
                 "test_museval_compat.py", "test_separators.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file kept
