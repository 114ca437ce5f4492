"""Checks that tests/test_model_*.py share: a config's size from its shapes alone, and a tiny config trained
by the command line, separating a song and exported with `jax.export` (the module's stems against the
separator's)."""

import pathlib

import jax
import numpy as np
from flax import nnx

from mssjax import audio, cli, models, separate, separators
from mssjax.deploy import exported

REPO = pathlib.Path(__file__).resolve().parents[1]


def n_parameters(config, *, n_targets=None, variables=nnx.Param):
  """The scalars of ``config``'s model: its parameters, or with ``variables=...`` its whole state, built
  abstractly (`nnx.eval_shape`: nothing allocated or compiled).

  Args:
    config: an experiment config (its ``model``, ``stft``, ``sample_rate`` and ``targets``).
    n_targets: the targets the model estimates (default ``len(config.targets)``).
    variables: an `nnx` filter of the state to count.
  """
  model = nnx.eval_shape(lambda: models.get_model(
      config.model, n_bins=models.model_bins(config), n_targets=n_targets or len(config.targets),
      stft_bins=1 + config.stft.n_fft // 2, rngs=nnx.Rngs(0)))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, variables)))


def train_tiny(folder, name):
  """``configs/<name>.py`` trained into ``folder`` by ``mssjax train`` (its few steps, validated and checkpointed)."""
  assert cli.main(["train", "--config", str(REPO / "configs" / f"{name}.py"), "--workdir", str(folder),
                   "--quiet"]) == 0
  return folder


def separate_song(mixture_path, workdir, out):
  """``mssjax separate`` of one song by a trained workdir: ``{target: [channels, samples]}``, each stem
  checked finite and of the mixture's rate and shape."""
  assert cli.main(["separate", str(mixture_path), "--checkpoint", str(workdir), "-o", str(out), "--quiet"]) == 0
  (folder,) = separate.output_folders([mixture_path], out)
  (mixture,), rate = audio.read(mixture_path)
  stems = {}
  for path in sorted(folder.iterdir()):
    (stems[path.stem],), stem_rate = audio.read(path)
    assert stem_rate == rate and stems[path.stem].shape == mixture.shape and np.all(np.isfinite(stems[path.stem]))
  return stems


def export_round_trips(argv, module, method, workdir, mixture, *, sample_rate=None):
  """``mssjax export <argv> -o module``; the loaded module separates ``mixture`` as the separator ``method``
  of ``workdir`` does (within 1e-5; ``sample_rate`` is passed on to the module only when given). Returns
  the loaded module."""
  assert cli.main(["export", *argv, "-o", str(module)]) == 0
  loaded = exported.load(module)
  got = loaded.separate(mixture) if sample_rate is None else loaded.separate(mixture, sample_rate=sample_rate)
  want = separate.separate_array(separators.get(method, {"checkpoint": str(workdir)}), mixture,
                                 sample_rate=sample_rate or loaded.sample_rate)
  assert list(got) == list(want) == list(loaded.targets)
  for target, stem in want.items():
    np.testing.assert_allclose(got[target], stem, atol=1e-5)
  return loaded
