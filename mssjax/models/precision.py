"""Mixed precision for any model: float32 parameters, bfloat16 compute, float32 signal processing.

``config.precision`` names the dtype a network computes in (`PRECISIONS`). With
``"bfloat16"`` the parameters (the optimiser's master weights, its state and the
checkpoints) stay float32; the train step and validation cast a copy of every
floating parameter to bfloat16 (`cast_params`) and the model's real input to
bfloat16, and cast the model's output back to float32 (`call_model`), so the
STFT, the masks, the iSTFT, the Wiener filter and the loss all run in float32,
as mixed-precision training does elsewhere (Micikevicius et al. 2018; bfloat16
needs no loss scaling: its exponent range is float32's). The gradient of the
cast is a cast back, so gradients arrive in float32.

What stays float32 inside a model is the model's concern: Flax's normalisation
layers already compute their statistics in float32 whatever their input.
A ``"complex"`` model's input (the complex STFT) has no bfloat16 form: it is
passed as it is, and a complex model computes in bfloat16 where it casts the
real view of its input to its parameters' dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from mssjax.errors import check_choice

PRECISIONS = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
"""``config.precision``: the dtype a model computes in (its parameters stay float32)."""


def compute_dtype(precision: str) -> Any:
  """The jnp dtype of a `PRECISIONS` name; others raise a `ParameterError` listing the valid ones."""
  return PRECISIONS[check_choice("precision", precision, sorted(PRECISIONS))]


def cast_params(params: Any, precision: str) -> Any:
  """A copy of ``params`` with every floating leaf cast to the compute dtype (others as they are)."""
  dtype = compute_dtype(precision)
  if dtype == jnp.float32:
    return params
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


def call_model(model: nnx.Module, x: jax.Array, precision: str) -> jax.Array:
  """``model(x)`` in ``precision``: a real ``x`` cast to the compute dtype, the output back to float32.

  Args:
    model: any model of `mssjax.models.DOMAINS` (its parameters cast by `cast_params`).
    x: its input: real magnitudes or waveforms, or a complex STFT (passed as it is).
    precision: a `PRECISIONS` name.

  Returns:
    the model's output, real outputs as float32, complex ones as complex64.
  """
  dtype = compute_dtype(precision)
  if dtype == jnp.float32:
    return model(x)
  out = model(x if jnp.iscomplexobj(x) else x.astype(dtype))
  return out.astype(jnp.complex64 if jnp.iscomplexobj(out) else jnp.float32)


__all__ = ["PRECISIONS", "call_model", "cast_params", "compute_dtype"]
