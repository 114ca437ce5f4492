"""The single-file weights format (mssjax.weights) and the orbax workdir reader (mssjax.checkpoints)."""

import json

import ml_collections
import numpy as np
import pytest

from mssjax import weights
from mssjax.errors import CheckpointError


def _params():
  rng = np.random.default_rng(0)
  return {"down": {0: {"conv": {"kernel": rng.standard_normal((5, 5, 16, 32)).astype(np.float32),
                                "bias": np.zeros(32, np.float32)}}},
          "input_mean": rng.standard_normal(20).astype(np.float32)}


def _config():
  return ml_collections.ConfigDict(dict(model=dict(name="unet", features=(4, 8), remat=False), sample_rate=44100,
                                        targets=("speech", "piano")))


def test_round_trip_is_exact(tmp_path):
  params = _params()
  path = weights.save(tmp_path / "m.safetensors", params, _config(), metadata={"step": "12"})
  stored = weights.read(path)
  assert stored.config.to_dict() == json.loads(_config().to_json()) and stored.metadata["step"] == "12"
  assert tuple(stored.config.targets) == ("speech", "piano")  # the targets travel in the file
  restored = weights.unflatten(stored.params, params, path=path)
  assert restored["down"][0]["conv"]["kernel"].dtype == np.float32
  np.testing.assert_array_equal(restored["down"][0]["conv"]["kernel"], params["down"][0]["conv"]["kernel"])
  np.testing.assert_array_equal(restored["input_mean"], params["input_mean"])
  assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("dtype,tolerance", [("float16", 1e-3), ("bfloat16", 1e-2)])
def test_half_precision_storage(tmp_path, dtype, tolerance):
  params = _params()
  full = weights.save(tmp_path / "full.safetensors", params, _config())
  half = weights.save(tmp_path / "half.safetensors", params, _config(), storage_dtype=dtype)
  assert half.stat().st_size < 0.6 * full.stat().st_size
  restored = weights.unflatten(weights.read(half).params, params)
  assert restored["input_mean"].dtype == np.float32
  np.testing.assert_allclose(restored["input_mean"], params["input_mean"], rtol=tolerance, atol=tolerance)


def test_bad_files_are_clear_errors_naming_the_file(tmp_path):
  params = _params()
  good = weights.save(tmp_path / "good.safetensors", params, _config())
  data = good.read_bytes()
  (tmp_path / "truncated.safetensors").write_bytes(data[:len(data) // 2])
  (tmp_path / "garbage.safetensors").write_bytes(b"not a weights file at all")
  for name in ("truncated", "garbage"):
    with pytest.raises(CheckpointError, match=f"{name}.safetensors: not a readable safetensors weights file"):
      weights.read(tmp_path / f"{name}.safetensors")
  with pytest.raises(CheckpointError, match="missing.safetensors: no such weights file"):
    weights.read(tmp_path / "missing.safetensors")
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
  with pytest.raises(CheckpointError, match="other.safetensors: not an mssjax weights file"):
    weights.read(tmp_path / "other.safetensors")
  other = dict(params, input_mean=np.zeros(7, np.float32))
  with pytest.raises(CheckpointError, match=r"good.safetensors: parameter input_mean has shape \(20,\), the model's "
                                            r"is \(7,\)"):
    weights.unflatten(weights.read(good).params, other, path=good)
  with pytest.raises(CheckpointError, match=r"missing \['extra'\]"):
    weights.unflatten(weights.read(good).params, dict(params, extra=np.zeros(1)), path=good)
  with pytest.raises(Exception, match="storage_dtype='int8' is not known"):
    weights.save(tmp_path / "x.safetensors", params, _config(), storage_dtype="int8")
