"""The separators, chosen by name: classical recipes, oracles, trained networks.

Every separator is a `Separator` (`mssjax.separators.base`): its name, the
targets it returns, the rate it works at, its config and parameters, and one
pure jax function for one chunk::

    sep = separators.get("hpss_repet")
    sep.targets, sep.sample_rate      # ("vocals", "drums", "bass", "other"), 44100
    stems = sep(mixture)              # mixture [..., 2, n_samples] float32 at sep.sample_rate
    stems["vocals"]                   # [..., 2, n_samples]

Oracles (``sep.needs_references``) also take the true stems
``[..., len(sep.targets), 2, n_samples]``. `mssjax.separate` separates songs
of any length, rate and channel count with any separator.

Every separator is built from a config (`default_config`; ``configs/<name>.py``
returns the recipes' defaults): the one place each setting has its default,
part of the library so that an installed copy needs no repository. `get`
takes overrides of it (``get("hpss_repet", {"hpss.kernel_size": (31, 17)})``);
a misspelled key is an error listing the valid ones. Every config holds
``chunk_seconds`` and ``overlap_seconds``: how `mssjax.separate` cuts a song.

``complexity(sep)`` (`mssjax.separators.cost`) measures what a separator costs:
its parameters, FLOPs per second of audio by XLA's cost analysis of its chunk's
program (loops counted per iteration), and XLA's peak memory of that chunk.

`REGISTRY` is the one table of names, each with its default config and its
builder:

- ``hpss_repet``, ``nmf``: the classical recipes (`mssjax.separators.classical`);
- ``irm1``, ``irm2``, ``ibm``, ``mwf``: the SiSEC 2018 oracles, and ``mixture``
  (`mssjax.separators.oracles`), for any targets (``config.targets``);
- one per network architecture of `mssjax.models` (``unet``, ...): a trained
  network (`mssjax.separators.network`): the pretrained one installed with the
  package, a training workdir (``checkpoint``) or a weights file
  (``weights``); its targets are those it was trained on;
- ``ensemble``: several of the above run on each chunk, their estimates
  averaged per target with weights (`mssjax.separators.ensemble`); its config
  lists its members' configs, so it is checked by its own ``make_config``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple

import ml_collections

from mssjax import config as config_lib
from mssjax import models
from mssjax.errors import check_choice
from mssjax.separators import classical, ensemble, network, oracles
from mssjax.separators.base import Network, Separator
from mssjax.separators.cost import Complexity, complexity
from mssjax.separators.classical import bass_ownership, hpss_repet_config, nmf_config
from mssjax.separators.ensemble import ensemble_config
from mssjax.separators.oracles import ORACLES

__all__ = ["Separator", "Network", "Complexity", "complexity", "REGISTRY", "Entry", "ORACLES", "names", "network_names", "get", "make_config",
           "default_config", "hpss_repet_config", "nmf_config", "ensemble_config", "bass_ownership"]


class Entry(NamedTuple):
  """A registered separator: its default config and how it is built from a (checked) config.

  Attributes:
    default_config: its default config.
    build: the separator from a checked config.
    make_config: ``(config or overrides or None, default) -> checked locked config``, for a
      separator whose config does not have fixed keys (the ensemble's members); None: the keys
      are the default's (`make_config`).
  """

  default_config: Callable[[], ml_collections.ConfigDict]
  build: Callable[[ml_collections.ConfigDict], Separator]
  make_config: Callable[[Any, ml_collections.ConfigDict], ml_collections.ConfigDict] | None = None


REGISTRY: dict[str, Entry] = {
    "hpss_repet": Entry(hpss_repet_config, lambda config: classical.build("hpss_repet", config)),
    "nmf": Entry(nmf_config, lambda config: classical.build("nmf", config)),
    **{name: Entry(lambda name=name: oracles.oracle_config(name),
                   lambda config, name=name: oracles.build_oracle(name, config)) for name in ORACLES},
    "mixture": Entry(oracles.mixture_config, lambda config: oracles.build_mixture("mixture", config)),
    **{name: Entry(functools.partial(network.network_config, name), functools.partial(network.named_network, name))
       for name in models.names()},
    "ensemble": Entry(ensemble.ensemble_config,
                      lambda config: ensemble.build(config, get, make_config, names()),
                      lambda config, default: ensemble.make_ensemble_config(config, default, make_config)),
}


def names() -> list[str]:
  """The registered separator names."""
  return list(REGISTRY)


def network_names() -> list[str]:
  """The separators that are trained networks: one per architecture of `mssjax.models`."""
  return models.names()


def default_config(name: str) -> ml_collections.ConfigDict:
  """A fresh, locked copy of the default config of separator ``name`` (part of the library, no file read).

  Raises:
    ParameterError: an unknown name (the message lists the valid ones).
  """
  check_choice("separator", name, names())
  config = REGISTRY[name].default_config()
  config.lock()
  return config


def make_config(name: str, config: ml_collections.ConfigDict | Mapping[str, Any] | None = None
                ) -> ml_collections.ConfigDict:
  """The locked config of separator ``name``.

  Args:
    name: a registered name.
    config: None (the default config), a whole ConfigDict of the default's
      keys, or a mapping of overrides of the default
      (``{"hpss.kernel_size": (31, 17)}``).

  Raises:
    ParameterError: an unknown name, or a key the default config does not have
      (the message lists the valid ones).
  """
  default = default_config(name)
  if REGISTRY[name].make_config is not None:
    return REGISTRY[name].make_config(config, default)
  what = f"{name} config"
  if isinstance(config, ml_collections.ConfigDict):
    config_lib.check_same_keys(config, default, what=what)
    return config_lib.override(default, config.to_dict(), what=what)
  return config_lib.override(default, config, what=what)


def get(name: str, config: ml_collections.ConfigDict | Mapping[str, Any] | None = None) -> Separator:
  """The separator registered as ``name``, built from its config (see `make_config`).

  A network's name (``"unet"``, `mssjax.models.names`) loads the network of that architecture its
  config names: the pretrained one by default, a training workdir (``checkpoint``) or a weights file
  (``weights``).

  Raises:
    ParameterError: an unknown name (the message lists the valid ones) or a
      bad config.
    CheckpointError: a network that cannot be loaded.
  """
  config = make_config(name, config)
  return REGISTRY[name].build(config)
