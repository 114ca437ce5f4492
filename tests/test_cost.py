"""Tests of `mssjax.separators.cost`: parameters, FLOPs per second of audio and peak memory of a separator."""

import sys
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mssjax import TARGETS, models, separators
from mssjax.errors import ParameterError
from mssjax.separators import Separator, cost
from mssjax.separators import network as separator_lib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the configs/ folder
from configs import unet_tiny  # pylint: disable=wrong-import-position

RATE = 8000


def _looped(steps, unroll=1):
  """A separator of known cost: ``steps`` scan steps of ``x * 0.5 + 1`` on each stem: 2 FLOPs per sample and
  step, 4 stems of 2 channels."""
  def apply(params, mixture):
    stems = jnp.stack([mixture] * len(TARGETS))
    return jax.lax.scan(lambda x, _: (x * params["gain"] + 1.0, None), stems, None, length=steps,
                        unroll=unroll)[0]
  return Separator("looped", TARGETS, RATE, ml_collections.ConfigDict(), apply,
                   params={"gain": jnp.float32(0.5)}, chunk_seconds=0.5)


@pytest.mark.parametrize("steps,unroll", [(10, 1), (11, 4), (10, True)])
def test_a_loop_is_counted_per_iteration(steps, unroll):
  """XLA counts a loop body once; the complexity counts it ``steps`` times, unrolled or not."""
  got = cost.complexity(_looped(steps, unroll))
  assert got.flops_per_second == pytest.approx(steps * 2 * len(TARGETS) * 2 * RATE, rel=1e-3)
  assert got.seconds == 0.5 and got.n_parameters == 1 and got.loops_counted_once == 0
  assert got.memory_bytes >= (1 + 4) * 2 * (RATE // 2) * 4  # the [2, n] input and the [4, 2, n] output, float32


def test_the_mixture_costs_no_flops():
  mixture = cost.complexity(separators.get("mixture"), seconds=0.25)
  assert mixture.flops_per_second == 0 and mixture.n_parameters == 0
  assert mixture.memory_bytes >= 5 * 2 * 11025 * 4  # the input and its four copies (an oracle: tests/test_evaluate.py)


def test_a_network_costs_the_same_per_second_at_any_chunk():
  """A tiny U-Net's FLOPs grow linearly with the chunk; its memory grows with it; its parameters are its own."""
  config = unet_tiny.get_config()
  spec = models.model_spec(config)
  params = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), spec.abstract_params)  # the count needs no values
  unet = separator_lib.network_separator(config, params)
  short, long = (cost.complexity(unet, seconds=s) for s in (0.5, 1.0))
  assert short.n_parameters == long.n_parameters == spec.n_parameters
  assert np.isfinite(short.flops_per_second) and short.flops_per_second > 1e6
  assert long.flops_per_second == pytest.approx(short.flops_per_second, rel=0.03)
  assert short.memory_bytes < long.memory_bytes
  assert unet.chunk_program(int(0.5 * unet.sample_rate)) is unet.chunk_program(int(0.5 * unet.sample_rate))


def test_lengths():
  whole = Separator("whole", ("vocals",), RATE, ml_collections.ConfigDict(), lambda params, x: x[None])
  assert cost.chunk_samples(whole) == cost.DEFAULT_SECONDS * RATE
  assert cost.chunk_samples(_looped(1)) == RATE // 2
  assert cost.chunk_samples(_looped(1), 0.125) == RATE // 8
  with pytest.raises(ParameterError, match="seconds=0"):
    cost.complexity(whole, seconds=0)
  with pytest.raises(ParameterError, match="one length"):
    cost.complexity(whole, seconds=1.0, n_samples=RATE)
