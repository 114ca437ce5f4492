"""Neural separation models, built from a config by name.

``get_model(config.model, n_bins=..., rngs=...)`` looks ``config.model.name`` up in
`MODELS`; an unknown name raises a `ParameterError` listing the valid ones.
"""

from flax import nnx

from mssjax.errors import ParameterError
from mssjax.models.unet import UNet, count_parameters


def _unet(model_config, *, n_bins, rngs):
  return UNet(
      n_bins=n_bins,
      audio_channels=model_config.get("audio_channels", 2),
      n_targets=model_config.get("n_targets", 4),
      features=tuple(model_config.features),
      kernel_size=tuple(model_config.get("kernel_size", (5, 5))),
      up_kernel_size=tuple(model_config.get("up_kernel_size", (3, 3))),
      lstm_hidden=model_config.lstm_hidden,
      mask_activation=model_config.get("mask_activation", "softmax"),
      rngs=rngs,
  )


MODELS = {"unet": _unet}


def names():
  """The registered model names."""
  return sorted(MODELS)


def get_model(model_config, *, n_bins, rngs=None):
  """Builds the model ``model_config.name`` with sizes from ``model_config``.

  Args:
    model_config: the ``config.model`` ConfigDict (``name``, sizes).
    n_bins: frequency bins the network models (from the STFT settings and ``max_bin``).
    rngs: `nnx.Rngs` for the initialisation (default ``nnx.Rngs(0)``).

  Raises:
    ParameterError: unknown name, or bad sizes.
  """
  name = model_config.name
  if name not in MODELS:
    raise ParameterError(f"model name={name!r} is not known; valid names: {names()}")
  return MODELS[name](model_config, n_bins=n_bins, rngs=rngs if rngs is not None else nnx.Rngs(0))


__all__ = ["MODELS", "UNet", "count_parameters", "get_model", "names"]
