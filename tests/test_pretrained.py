"""The pretrained network shipped in the package: the default separator, light to load, better than hpss_repet."""

import pathlib
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from mssjax import TARGETS, audio, separate, separators, weights
from mssjax.metrics import sdr
from mssjax.separators import network as separator_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_the_shipped_file_holds_the_model_and_its_config():
  path = separator_lib.PRETRAINED
  assert path.is_file() and path.stat().st_size <= 8 * 1024 * 1024
  stored = weights.read(path)
  assert stored.config.model.name == "unet" and int(stored.metadata["step"]) > 0
  assert (separator_lib.PRETRAINED_DIR / "README.md").is_file()  # the model card


LOAD = textwrap.dedent("""
    import sys
    import numpy as np
    from mssjax import separators
    sep = separators.get("unet")
    stems = sep(np.zeros((2, 44100), np.float32))
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("orbax", "grain", "tensorflow_datasets")
                   or m in ("mssjax.training.loop", "mssjax.checkpoints"))
    print("N_PARAMETERS", sep.n_parameters, "HEAVY", heavy)
""")


def test_the_default_unet_loads_without_orbax_or_training_code():
  out = subprocess.run([sys.executable, "-c", LOAD], cwd=REPO, capture_output=True, text=True, timeout=300,
                       check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "HEAVY []" in out.stdout and int(out.stdout.split("N_PARAMETERS")[1].split()[0]) > 100_000


@pytest.mark.realdata
@pytest.mark.slow
def test_the_shipped_network_beats_hpss_repet_on_a_real_preview(musdb_root):
  path = musdb_root / "test" / "AM Contra - Heart Peripheral.stem.mp4"
  stems = audio.load_stems(path)  # mixture, drums, bass, other, vocals
  mixture, references = stems[0], stems[[4, 1, 2, 3]]
  scores = {}
  for name in ("unet", "hpss_repet"):
    out = separate.separate_array(separators.get(name), mixture, sample_rate=44100)  # as `separate` does
    estimates = np.stack([np.asarray(out[t]) for t in TARGETS])
    scores[name] = float(np.mean(sdr.median_bss_eval_sdr(references, estimates)))
  assert scores["unet"] > scores["hpss_repet"] + 0.1, scores  # measured 2.49 vs 2.16 dB (searched hpss_repet)


@pytest.mark.slow
def test_a_wheel_carries_the_weights_and_the_model_card(tmp_path):
  out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  (wheel,) = tmp_path.glob("mssjax-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  assert "mssjax/pretrained/unet.safetensors" in names and "mssjax/pretrained/README.md" in names


def test_every_architecture_is_a_separator_that_loads_only_its_own_networks():
  for name in separator_lib.models.names():
    assert name in separators.names() and separators.default_config(name).method == name
  assert separators.get("unet").name == "unet"
  with pytest.raises(separator_lib.CheckpointError, match=r"holds a unet network, not other: .*--method unet"):
    separator_lib.named_network("other", {"weights": str(separator_lib.PRETRAINED)})
  with pytest.raises(separator_lib.CheckpointError, match="no pretrained other network is installed"):
    separator_lib.named_network("other", {})
